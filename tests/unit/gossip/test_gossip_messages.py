"""Wire format: round trips, truncation one byte at a time, fuzzing."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.gossip.messages import (
    Ack,
    Alive,
    Dead,
    Gossip,
    GossipDecodeError,
    Leave,
    MemberRecord,
    Message,
    NodeMeta,
    Ping,
    PingReq,
    PushPull,
    Revoke,
    RingReport,
    Suspect,
    decode,
    encode,
)
from reconciler.gossip.states import MemberState

HASH = "ab" * 32
META = NodeMeta("laptop-é", "192.0.2.20:7946", 16 << 30, 8)
BROADCASTS = (
    Alive("n1", 3, META),
    Suspect("n2", 1, "n1"),
    Dead("n3", 2, "n1"),
    Leave("n4", 7),
    RingReport("n1", 12, HASH),
    Revoke(b"\x00signed-entry\xff"),
)
RECORDS = (
    MemberRecord("n1", META, MemberState.ALIVE, 3, 12, HASH),
    MemberRecord("n2", META, MemberState.LEFT, 0),
)
MESSAGES = [
    Message(Ping(1, "n2"), 4, HASH, BROADCASTS),
    Message(PingReq(0xFFFFFFFF, "n3")),
    Message(Ack(9), 1, HASH),
    Message(Gossip(), 0, "", BROADCASTS),
    Message(PushPull(False, RECORDS, (b"r1", b"")), 2**63, HASH),
    Message(PushPull(True, ())),
]


@pytest.mark.parametrize("msg", MESSAGES, ids=lambda m: type(m.body).__name__)
def test_round_trip(msg: Message) -> None:
    assert decode(encode(msg)) == msg


@pytest.mark.parametrize("msg", MESSAGES, ids=lambda m: type(m.body).__name__)
def test_every_truncation_is_a_decode_error(msg: Message) -> None:
    data = encode(msg)
    for cut in range(len(data)):
        with pytest.raises(GossipDecodeError):
            decode(data[:cut])


def test_trailing_bytes_bad_magic_and_version_are_refused() -> None:
    data = encode(MESSAGES[0])
    for bad in (data + b"\x00", b"XX" + data[2:], data[:2] + b"\x02" + data[3:]):
        with pytest.raises(GossipDecodeError):
            decode(bad)


def test_invalid_utf8_and_unknown_kinds_are_refused() -> None:
    ping = bytearray(encode(Message(Ping(1, "ab"))))
    ping[-4] = 0xFF  # first byte of the target string (before the u16 broadcast count)
    with pytest.raises(GossipDecodeError):
        decode(bytes(ping))
    gossip = encode(Message(Gossip(), 0, "", (Leave("x", 1),)))
    with pytest.raises(GossipDecodeError):
        decode(gossip[:-8] + b"\x09" + gossip[-7:])


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_decode_error(data: bytes) -> None:
    with contextlib.suppress(GossipDecodeError):
        decode(data)


@settings(max_examples=300)
@given(st.sampled_from(MESSAGES), st.data())
def test_corrupted_messages_raise_only_decode_error(msg: Message, data: st.DataObject) -> None:
    raw = bytearray(encode(msg))
    index = data.draw(st.integers(0, len(raw) - 1))
    raw[index] = data.draw(st.integers(0, 255))
    with contextlib.suppress(GossipDecodeError):
        decode(bytes(raw))


names = st.text(min_size=1, max_size=20)
metas = st.builds(
    NodeMeta,
    st.text(max_size=20),
    st.text(max_size=30),
    st.integers(0, 2**64 - 1),
    st.integers(0, 65535),
)
incs = st.integers(0, 2**32 - 1)
hashes = st.one_of(st.just(""), st.binary(min_size=32, max_size=32).map(bytes.hex))
broadcasts = st.one_of(
    st.builds(Alive, names, incs, metas),
    st.builds(Suspect, names, incs, names),
    st.builds(Dead, names, incs, names),
    st.builds(Leave, names, incs),
    st.builds(RingReport, names, st.integers(0, 2**64 - 1), hashes),
    st.builds(Revoke, st.binary(max_size=40)),
)


@settings(max_examples=200)
@given(st.lists(broadcasts, max_size=6), st.integers(0, 2**64 - 1), hashes)
def test_generated_round_trip(bs: list, epoch: int, ring_hash: str) -> None:  # type: ignore[type-arg]
    msg = Message(Gossip(), epoch, ring_hash, tuple(bs))
    assert decode(encode(msg)) == msg
