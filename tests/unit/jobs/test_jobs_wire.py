"""Tensor frames: round trips, byte-at-a-time decoding, rejection of garbage."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.inference.errors import WireError
from reconciler.jobs.wire import MAGIC, FrameDecoder, Op, decode, encode


@pytest.mark.parametrize("dtype", ["<f4", "<f2", "<i4", "<i8"])
def test_round_trip(dtype: str) -> None:
    a = (np.arange(24).reshape(2, 3, 4) - 7).astype(dtype)
    frame = decode(encode(Op.ALL_GATHER, 42, a))
    assert frame.op is Op.ALL_GATHER and frame.step == 42
    assert frame.array.dtype == np.dtype(dtype) and np.array_equal(frame.array, a)


def test_header_layout_is_fixed() -> None:
    data = encode(Op.ALL_REDUCE_SUM, 7, np.ones((2, 3), dtype=np.float32))
    assert data[:4] == MAGIC
    assert struct.unpack_from("<BBBBQQ", data, 4) == (1, 1, 1, 2, 7, 24)
    assert struct.unpack_from("<2Q", data, 24) == (2, 3)
    assert len(data) == 24 + 16 + 24


def test_big_endian_input_is_sent_little_endian() -> None:
    a = np.arange(5, dtype=">f4")
    assert np.array_equal(decode(encode(Op.BROADCAST, 0, a)).array, a)


def test_scalar_and_empty_arrays() -> None:
    assert decode(encode(Op.BROADCAST, 1, np.array(2.5, dtype=np.float32))).array == 2.5
    assert decode(encode(Op.BROADCAST, 1, np.zeros((0, 4), np.float32))).array.shape == (0, 4)


@given(st.lists(st.integers(1, 5), min_size=1, max_size=3), st.integers(0, 2**64 - 1))
def test_byte_at_a_time_stream_of_frames(shape: list[int], step: int) -> None:
    arrays = [np.random.default_rng(i).standard_normal(shape).astype(np.float32) for i in range(3)]
    stream = b"".join(encode(Op.ALL_REDUCE_SUM, step, a) for a in arrays)
    decoder = FrameDecoder()
    frames = []
    for i in range(len(stream)):
        frames += decoder.feed(stream[i : i + 1])
    assert decoder.buffered == 0
    assert [f.step for f in frames] == [step] * 3
    assert all(np.array_equal(f.array, a) for f, a in zip(frames, arrays, strict=True))


def _good() -> bytes:
    return encode(Op.ALL_REDUCE_SUM, 3, np.ones(4, dtype=np.float32))


@pytest.mark.parametrize(
    ("offset", "value", "reason"),
    [
        (0, b"X", "magic"),
        (4, b"\x09", "version"),
        (5, b"\x63", "dtype"),
        (6, b"\x00", "op"),
        (7, b"\x09", "dimensions"),
        (16, b"\x05", "length"),
    ],
)
def test_garbage_headers_are_rejected(offset: int, value: bytes, reason: str) -> None:
    data = bytearray(_good())
    data[offset : offset + 1] = value
    with pytest.raises(WireError, match=reason):
        decode(bytes(data))


def test_bad_magic_is_seen_on_the_first_byte() -> None:
    with pytest.raises(WireError, match="magic"):
        FrameDecoder().feed(b"G")


def test_truncated_and_trailing_bytes_are_rejected() -> None:
    data = _good()
    for cut in (3, 20, len(data) - 1):
        with pytest.raises(WireError):
            decode(data[:cut])
    with pytest.raises(WireError):
        decode(data + b"\x00")


def test_unsendable_dtype_is_refused() -> None:
    with pytest.raises(WireError):
        encode(Op.ALL_GATHER, 0, np.zeros(3, dtype=np.complex64))


def test_a_shape_whose_product_wraps_around_is_refused() -> None:
    """Finding 13: 2**31 x 2**31 x 2**31 elements wrap to 0 in uint64 and used to pass
    as an empty payload, then failed in numpy with a ValueError that is not a WireError."""
    header = bytearray(_good()[:24])
    header[7] = 3  # ndim
    header[16:24] = (0).to_bytes(8, "little")  # payload length 0
    frame = bytes(header) + (2**31).to_bytes(8, "little") * 3
    with pytest.raises(WireError, match="larger than any payload"):
        decode(frame)


def test_a_huge_dimension_beside_a_zero_is_refused() -> None:
    """Found by bench/fuzz.py: shape (2**62, 0) is 0 elements, but numpy cannot make it."""
    header = bytearray(_good()[:24])
    header[7] = 2
    header[16:24] = (0).to_bytes(8, "little")
    frame = bytes(header) + (2**62).to_bytes(8, "little") + (0).to_bytes(8, "little")
    with pytest.raises(WireError, match="larger than any payload"):
        decode(frame)


def test_dimensions_whose_product_is_too_large_beside_a_zero_are_refused() -> None:
    """Found by bench/fuzz.py: each dimension fits, their product (zero aside) does not."""
    dims = (17170948, 536870912, 0)
    header = bytearray(_good()[:24])
    header[7] = len(dims)
    header[16:24] = (0).to_bytes(8, "little")
    frame = bytes(header) + b"".join(d.to_bytes(8, "little") for d in dims)
    with pytest.raises(WireError, match="larger than any payload"):
        decode(frame)
