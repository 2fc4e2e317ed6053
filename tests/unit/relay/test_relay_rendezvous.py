"""The relay as a rendezvous: members register where they listen and get the others
of their own pool back, under the node ID of their certificate, within bounds."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.codec import Reader, Writer
from reconciler.relay.core import RelayCore, Send
from reconciler.relay.framing import BadFrame, FrameParser, encode
from reconciler.relay.messages import FrameType, Message, PeerEntry, Peers, Register
from reconciler.relay.rendezvous import MAX_ADDRESSES, MAX_ENTRIES, decode_fields

A, B, X = 1, 2, 9


def _register(core: RelayCore, client: int, message: Register, now: float = 0.0) -> list[Message]:
    found: list[Message] = []
    for out in core.receive(client, encode(message), now):
        assert isinstance(out, Send) and out.client == client
        found += [e for e in FrameParser().feed(out.data) if not isinstance(e, BadFrame)]  # type: ignore[misc]
    return found


def test_members_of_one_pool_meet_and_other_pools_stay_apart() -> None:
    core = RelayCore()
    core.connect(A, "node-aaaaaaaaaaaaaaaa", "pool-1")
    core.connect(B, "node-bbbbbbbbbbbbbbbb", "pool-1")
    core.connect(X, "node-xxxxxxxxxxxxxxxx", "pool-2")
    assert _register(core, A, Register("alice", ("192.0.2.1:7000",), 8, 4)) == [Peers(())]
    _register(core, X, Register("mallory", ("192.0.2.9:7000",), 8, 4))
    answer = _register(core, B, Register("bob", ("198.51.100.2:7001", "192.0.2.2:7001"), 16, 2))
    alice = PeerEntry("node-aaaaaaaaaaaaaaaa", "alice", ("192.0.2.1:7000",), 8, 4)
    assert answer == [Peers((alice,))]
    core.disconnect(A)
    assert _register(core, B, Register("bob", ("192.0.2.2:7001",), 16, 2), 5.0) == [Peers(())]


def test_an_entry_is_filed_under_the_certificate_node_id_not_a_claimed_one() -> None:
    core = RelayCore()
    core.connect(A, "node-aaaaaaaaaaaaaaaa", "pool-1")
    _register(core, A, Register("node-bbbbbbbbbbbbbbbb", ("192.0.2.1:7000",), 0, 0))
    assert [e.node_id for e in core.registered("pool-1")] == ["node-aaaaaaaaaaaaaaaa"]


def test_peers_round_trip_and_are_capped_when_encoded() -> None:
    entries = tuple(
        PeerEntry(f"node-{i:016x}", f"device-{i}", (f"192.0.2.{i % 250}:7000",), 2**33, 8)
        for i in range(MAX_ENTRIES + 50)
    )
    (decoded,) = FrameParser().feed(encode(Peers(entries)))
    assert isinstance(decoded, Peers)
    assert decoded.entries == entries[:MAX_ENTRIES]


def _register_body(count: int, address: str = "192.0.2.1:7000") -> Reader:
    w = Writer().text16("alice").u8(count)
    for _ in range(count):
        w.text16(address)
    return Reader(w.u64(0).u16(0).getvalue())


def test_hostile_registrations_are_refused_as_bad_frames() -> None:
    from reconciler.codec import DecodeError

    with pytest.raises(DecodeError):
        decode_fields(FrameType.REGISTER, _register_body(MAX_ADDRESSES + 1))
    with pytest.raises(DecodeError):
        decode_fields(FrameType.REGISTER, _register_body(1, "no-port"))
    core = RelayCore()
    core.connect(A, "node-aaaaaaaaaaaaaaaa", "pool-1")
    body = Writer().text16("alice").u8(1).text16("x:99999").u64(0).u16(0).getvalue()
    frame = (len(body) + 1).to_bytes(4, "big") + bytes([FrameType.REGISTER]) + body
    out = core.receive(A, frame, 0.0)
    assert core.registered("pool-1") == []
    assert core.counters["bad_frame"] == 1 and len(out) == 1


addresses = st.lists(
    st.builds(lambda h, p: f"{h}:{p}", st.from_regex(r"[a-z0-9.]{1,20}", fullmatch=True),
              st.integers(1, 65535)),
    max_size=MAX_ADDRESSES,
).map(tuple)  # fmt: skip
names = st.text(max_size=20)
registers = st.builds(Register, names, addresses, st.integers(0, 2**64 - 1), st.integers(0, 0xFFFF))


@settings(max_examples=200, deadline=None)
@given(registers)
def test_fuzz_registrations_round_trip(message: Register) -> None:
    assert FrameParser().feed(encode(message)) == [message]
    entry = PeerEntry("node-aaaaaaaaaaaaaaaa", *dataclasses.astuple(message))
    assert FrameParser().feed(encode(Peers((entry,)))) == [Peers((entry,))]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([FrameType.REGISTER, FrameType.PEERS]), st.binary(max_size=300))
def test_fuzz_garbage_rendezvous_bodies_never_raise_or_register(kind: int, body: bytes) -> None:
    core = RelayCore()
    core.connect(A, "node-aaaaaaaaaaaaaaaa", "pool-1")
    frame = (len(body) + 1).to_bytes(4, "big") + bytes([kind]) + body
    core.receive(A, frame, 0.0)
    for entry in core.registered("pool-1"):  # a valid REGISTER by chance: bounded, ours
        assert entry.node_id == "node-aaaaaaaaaaaaaaaa"
        assert len(entry.addresses) <= MAX_ADDRESSES


def test_registrations_are_answered_at_most_once_a_second() -> None:
    core = RelayCore()
    core.connect(A, "node-aaaaaaaaaaaaaaaa", "pool-1")
    message = encode(Register("alice", ("192.0.2.1:7000",), 8, 4))
    assert len(core.receive(A, message, 10.0)) == 1
    assert core.receive(A, message * 50, 10.5) == []  # a flood gets nothing back
    assert core.counters["register_too_often"] == 50
    assert len(core.receive(A, message, 11.0)) == 1
