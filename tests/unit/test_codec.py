"""The one binary codec: fields round-trip, every malformed read is a DecodeError with a
reason, and a Writer refuses what its length prefix cannot say."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.codec import GARBAGE, TRUNCATED, DecodeError, Reader, Writer
from reconciler.gossip.messages import GossipDecodeError


def _record() -> bytes:
    return (
        Writer()
        .u8(7)
        .u16(513)
        .u32(2**32 - 1)
        .u64(2**64 - 1)
        .raw(b"MG")
        .blob16(b"\x00\xff")
        .blob32(b"abc")
        .text16("n\u00e9ud")
        .getvalue()
    )


def _read_record(r: Reader) -> tuple[object, ...]:
    fields = (r.u8(), r.u16(), r.u32(), r.u64(), r.fixed(2), r.blob16(2), r.blob32(), r.text16())
    r.end()
    return fields


def test_fields_round_trip_in_big_endian_with_their_prefix_widths() -> None:
    data = _record()
    assert data[:3] == b"\x07\x02\x01"
    assert data[15:23] == b"MG\x00\x02\x00\xff\x00\x00"  # u16 prefix, then a u32 prefix
    expected = (7, 513, 2**32 - 1, 2**64 - 1, b"MG", b"\x00\xff", b"abc", "n\u00e9ud")
    assert _read_record(Reader(data)) == expected


def test_every_cut_of_a_record_is_truncated() -> None:
    data = _record()
    for cut in range(len(data)):
        with pytest.raises(DecodeError) as err:
            _read_record(Reader(data[:cut]))
        assert err.value.reason == TRUNCATED, cut


def test_a_huge_length_prefix_is_truncated_not_allocated() -> None:
    with pytest.raises(DecodeError) as err:
        Reader(b"\xff\xff\xff\xffabc").blob32()
    assert err.value.reason == TRUNCATED


@pytest.mark.parametrize(
    ("data", "read"),
    [
        (b"\x00\x02\xc3\x28", lambda r: r.text16()),  # invalid UTF-8
        (b"\x00\x00", lambda r: r.text16(empty=False)),  # a required name, empty
        (b"\x00\x03abc", lambda r: r.blob16(4)),  # wrong size for a sized field
        (b"\x00\x05", lambda r: r.count16(4, "links")),  # count above its limit
        (b"\x09", lambda r: r.count8(8, "addresses")),
        (b"\x01\x02", lambda r: (r.u8(), r.end())),  # trailing bytes
    ],
)
def test_malformed_fields_are_garbage(data: bytes, read: Callable[[Reader], object]) -> None:
    with pytest.raises(DecodeError) as err:
        read(Reader(data))
    assert err.value.reason == GARBAGE


def test_limits_and_sizes_are_inclusive() -> None:
    r = Reader(b"\x00\x04\x08\x00\x03abc\x00\x00")
    assert (r.count16(4), r.count8(8), r.blob16(3), r.text16()) == (4, 8, b"abc", "")
    r.end()


def test_a_count_message_names_what_was_counted() -> None:
    with pytest.raises(DecodeError, match="9 addresses, at most 8"):
        Reader(b"\x09").count8(8, "addresses")


def test_writer_refuses_a_field_longer_than_its_prefix() -> None:
    Writer().blob16(bytes(0xFFFF))
    with pytest.raises(ValueError, match="too long"):
        Writer().blob16(bytes(0x10000))
    with pytest.raises(ValueError, match="too long"):
        Writer().text16("\u00e9" * 0x8000)  # 65,536 UTF-8 bytes
    assert len(Writer().blob32(bytes(0x10000)).getvalue()) == 4 + 0x10000


def test_the_error_is_a_value_error_with_a_reason_and_a_message() -> None:
    err = DecodeError("too_many", "1025 entries")
    assert isinstance(err, ValueError) and err.reason == "too_many" and str(err) == "1025 entries"
    assert str(DecodeError(GARBAGE)) == GARBAGE


def test_gossip_callers_catch_the_one_error() -> None:
    with pytest.raises(GossipDecodeError):
        Reader(b"").u8()


_READS = st.lists(
    st.sampled_from(
        [
            lambda r: r.u8(),
            lambda r: r.u16(),
            lambda r: r.u32(),
            lambda r: r.u64(),
            lambda r: r.fixed(3),
            lambda r: r.blob16(),
            lambda r: r.blob16(32),
            lambda r: r.blob32(),
            lambda r: r.text16(),
            lambda r: r.text16(empty=False),
            lambda r: r.count8(3),
            lambda r: r.count16(100),
            lambda r: r.end(),
        ]
    ),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=80), reads=_READS)
def test_any_reads_of_any_bytes_raise_only_decode_error(
    data: bytes, reads: list[Callable[[Reader], object]]
) -> None:
    r = Reader(data)
    try:
        for read in reads:
            read(r)
    except DecodeError as err:
        assert err.reason in (TRUNCATED, GARBAGE)
