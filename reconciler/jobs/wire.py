"""Tensor frames for the collectives' network implementation: a fixed header, raw bytes.

Layout (little-endian, never pickle)::

    offset size  field
    0      4     magic  b"MNTF"
    4      1     version (1)
    5      1     dtype code (1 float32, 2 float16, 3 int32, 4 int64)
    6      1     op code (1 all_reduce_sum, 2 all_gather, 3 broadcast)
    7      1     ndim (0..8)
    8      8     step: u64 sequence number of the collective call
    16     8     payload length in bytes
    24     8*ndim shape, u64 each
    ...    len   payload: the array's bytes in C order

``FrameDecoder`` accepts bytes in any chunking (down to one byte at a time) and yields
complete frames; anything malformed raises :class:`WireError`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import numpy as np
from numpy.typing import NDArray

from reconciler.inference.errors import WireError

MAGIC = b"MNTF"
VERSION = 1
MAX_NDIM = 8
MAX_PAYLOAD = 1 << 31
_HEADER = struct.Struct("<4sBBBBQQ")
_DTYPES: dict[int, np.dtype[Any]] = {
    1: np.dtype("<f4"),
    2: np.dtype("<f2"),
    3: np.dtype("<i4"),
    4: np.dtype("<i8"),
}
_CODES = {dt: code for code, dt in _DTYPES.items()}


class Op(IntEnum):
    """Which collective a frame belongs to."""

    ALL_REDUCE_SUM = 1
    ALL_GATHER = 2
    BROADCAST = 3


@dataclass(frozen=True)
class Frame:
    """One decoded tensor frame."""

    op: Op
    step: int
    array: NDArray[np.generic]


def encode(op: Op, step: int, array: NDArray[np.generic]) -> bytes:
    """Header + raw little-endian bytes of ``array``."""
    dt = array.dtype.newbyteorder("<")
    code = _CODES.get(dt)
    if code is None:
        raise WireError(f"dtype {array.dtype} cannot be sent")
    if array.ndim > MAX_NDIM:
        raise WireError(f"{array.ndim} dimensions is more than {MAX_NDIM}")
    payload = np.ascontiguousarray(array, dtype=dt).tobytes()
    header = _HEADER.pack(MAGIC, VERSION, code, int(op), array.ndim, step, len(payload))
    return header + struct.pack(f"<{array.ndim}Q", *array.shape) + payload


def decode(data: bytes) -> Frame:
    """Exactly one frame from ``data``; trailing or missing bytes are errors."""
    decoder = FrameDecoder()
    frames = decoder.feed(data)
    if len(frames) != 1 or decoder.buffered:
        raise WireError(
            f"expected one whole frame, got {len(frames)} and {decoder.buffered} bytes left"
        )
    return frames[0]


class FrameDecoder:
    """Incremental decoder: ``feed(bytes) -> [Frame]``."""

    def __init__(self) -> None:
        self._buf = bytearray()

    @property
    def buffered(self) -> int:
        """Bytes received that do not yet make a frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        """Frames completed by ``data``."""
        self._buf += data
        frames = []
        while (frame := self._next()) is not None:
            frames.append(frame)
        return frames

    def _next(self) -> Frame | None:
        if len(self._buf) < _HEADER.size:
            self._check_magic()
            return None
        magic, version, code, op, ndim, step, length = _HEADER.unpack_from(self._buf)
        dtype = _validate(magic, version, code, op, ndim, length)
        shape_end = _HEADER.size + 8 * ndim
        if len(self._buf) < shape_end:
            return None
        shape = struct.unpack_from(f"<{ndim}Q", self._buf, _HEADER.size)
        if _elements(tuple(max(dim, 1) for dim in shape)) > MAX_PAYLOAD:
            raise WireError(f"shape {shape} is larger than any payload, even if empty")
        if _elements(shape) * dtype.itemsize != length:
            raise WireError(f"payload length {length} does not match shape {shape} of {dtype}")
        end = shape_end + length
        if len(self._buf) < end:
            return None
        array = np.frombuffer(bytes(self._buf[shape_end:end]), dtype=dtype).reshape(shape)
        del self._buf[:end]
        return Frame(Op(op), step, array)

    def _check_magic(self) -> None:
        n = min(len(self._buf), len(MAGIC))
        if bytes(self._buf[:n]) != MAGIC[:n]:
            raise WireError(f"bad magic {bytes(self._buf[:n])!r}")


def _elements(shape: tuple[int, ...]) -> int:
    """The element count of ``shape``, in Python integers (no uint64 wrap-around)."""
    count = 1
    for dim in shape:
        count *= dim
    return count


def _validate(
    magic: bytes, version: int, code: int, op: int, ndim: int, length: int
) -> np.dtype[Any]:
    if magic != MAGIC:
        raise WireError(f"bad magic {magic!r}")
    if version != VERSION:
        raise WireError(f"unsupported version {version}")
    if code not in _DTYPES:
        raise WireError(f"unknown dtype code {code}")
    if op not in Op.__members__.values():
        raise WireError(f"unknown op code {op}")
    if ndim > MAX_NDIM:
        raise WireError(f"{ndim} dimensions is more than {MAX_NDIM}")
    if length > MAX_PAYLOAD:
        raise WireError(f"payload of {length} bytes is too large")
    return _DTYPES[code]
