"""A member with a valid certificate that lies in gossip (security review, finding 1).

Each test replays one attack of the review against the sans-IO machine: a hostile
sender ``EVIL`` (an authenticated peer) talks to honest members and must change
nothing it is not entitled to change.
"""

from __future__ import annotations

import random

from reconciler.gossip.claims import MAX_MEMORY_BYTES
from reconciler.gossip.config import GossipConfig
from reconciler.gossip.events import Event, MemberHinted, MessageDropped
from reconciler.gossip.machine import GossipProtocol
from reconciler.gossip.messages import (
    Alive,
    Broadcast,
    Gossip,
    Leave,
    MemberRecord,
    Message,
    NodeMeta,
    Ping,
    PushPull,
    Revoke,
    RingReport,
    Suspect,
    decode,
    encode,
)
from reconciler.gossip.states import MemberState

CONFIG = GossipConfig(pool_id="pool-x", max_members=8, max_hints=4)
A, B, EVIL = ("node-" + x * 16 for x in "abe")
U32 = 0xFFFFFFFF


def node_id(i: int) -> str:
    return f"node-{i:016x}"


def meta_of(name: str, memory: int = 8 << 30) -> NodeMeta:
    return NodeMeta(name, "192.0.2.1:7000", memory, 4)


def make(nid: str, verify: object = None) -> GossipProtocol:
    def default(e: bytes) -> str | None:
        return e[7:].decode() if e.startswith(b"revoke:") else None

    return GossipProtocol(
        nid,
        meta_of(nid[-4:]),
        CONFIG,
        random.Random(1),
        0.0,
        verify=verify or default,  # type: ignore[arg-type]
    )


def drain(p: GossipProtocol) -> list[Event]:
    out = []
    while (e := p.next_event()) is not None:
        out.append(e)
    return out


def exchange(nodes: dict[str, GossipProtocol], now: float = 0.0) -> None:
    for _ in range(6):
        batch = [(s, t, d) for s, p in nodes.items() for t, d in p.messages_to_send()]
        for src, to, data in batch:
            if to in nodes:
                nodes[to].receive_message(src, data, now)


def pool() -> dict[str, GossipProtocol]:
    """A, B and the hostile member EVIL, all joined and converged."""
    nodes = {n: make(n) for n in (A, B, EVIL)}
    nodes[B].add_seed(A, meta_of("a"))
    nodes[EVIL].add_seed(A, meta_of("a"))
    exchange(nodes)
    for p in nodes.values():
        drain(p)
    return nodes


def say(target: GossipProtocol, *broadcasts: Broadcast, body: object = None) -> list[Event]:
    """EVIL sends one message to ``target``; returns what target reported."""
    msg = Message(body or Gossip(), 0, "", tuple(broadcasts))  # type: ignore[arg-type]
    target.receive_message(EVIL, encode(msg), 1.0)
    target.messages_to_send()  # encoding what it answers must not raise either
    return drain(target)


def table(p: GossipProtocol) -> dict[str, tuple[MemberState, int, NodeMeta]]:
    return {m.node_id: (m.state, m.incarnation, m.meta) for m in p.members()}


def reasons(events: list[Event]) -> list[str]:
    return [e.reason for e in events if isinstance(e, MessageDropped)]


def test_suspect_at_the_u32_limit_neither_crashes_nor_pins_the_victim() -> None:
    nodes = pool()
    b = nodes[B]
    events = say(b, Suspect(B, U32, EVIL))
    assert reasons(events) == ["incarnation near the 32-bit limit"]
    assert b.incarnation < 1 << 31
    say(b, Suspect(B, (1 << 31) - 5, EVIL))  # the largest jump honoured ...
    before = b.incarnation
    for _ in range(3):  # ... and then each message buys one refutation at most
        say(b, *(Suspect(B, before + k, EVIL) for k in range(100)))
    assert b.incarnation <= before + 3
    b.handle_timer(b.get_timer() or 0.0)
    assert all(decode(data) for _, data in b.messages_to_send())


def test_forged_leave_of_another_member_is_refused() -> None:
    nodes = pool()
    a = nodes[A]
    events = say(a, Leave(B, 1000))
    assert reasons(events) == ["leave not sent by its subject"]
    assert table(a)[B][:2] == (MemberState.ALIVE, 0)
    records = (MemberRecord(B, meta_of("b"), MemberState.LEFT, 5),)
    say(a, body=PushPull(True, records))
    assert table(a)[B][:2] == (MemberState.ALIVE, 0)


def test_third_parties_cannot_raise_a_members_incarnation() -> None:
    nodes = pool()
    a = nodes[A]
    say(a, Suspect(B, 1_000_000, EVIL))
    state, incarnation, _ = table(a)[B]
    assert state is MemberState.SUSPECT and incarnation == 0  # B's refutation (1) still wins
    a.receive_message(B, encode(Message(Gossip(), 0, "", (Alive(B, 1, meta_of("b")),))), 1.1)
    assert table(a)[B][:2] == (MemberState.ALIVE, 1)


def test_ghost_members_never_enter_the_table() -> None:
    nodes = pool()
    a = nodes[A]
    ghosts = tuple(
        MemberRecord(node_id(i), meta_of(f"g{i}"), MemberState.ALIVE, 0) for i in range(4096)
    )
    events = say(a, body=PushPull(False, ghosts))
    events += say(a, *(Alive(node_id(i), 1, meta_of("g")) for i in range(5000, 6000)))
    assert set(table(a)) == {A, B, EVIL}
    hinted = [e for e in events if isinstance(e, MemberHinted)]
    assert len(hinted) <= CONFIG.max_hints
    assert "too many unconfirmed members" in reasons(events)


def test_a_hinted_node_becomes_a_member_only_by_answering_for_itself() -> None:
    nodes = pool()
    c_id = node_id(0xC)
    nodes[c_id] = make(c_id)
    nodes[c_id].add_seed(B, meta_of("b"))  # C knows only B; A hears of C from B
    exchange(nodes)
    assert table(nodes[A])[c_id][0] is MemberState.ALIVE
    assert table(nodes[c_id])[A][0] is MemberState.ALIVE


def test_capacity_is_plausible_and_only_its_owner_states_it() -> None:
    nodes = pool()
    a = nodes[A]
    honest = table(a)[B]
    grab = meta_of("b", MAX_MEMORY_BYTES)
    assert reasons(say(a, Alive(B, 7, grab))) == []  # a hint: B is asked, not believed
    assert table(a)[B] == honest
    events = say(a, Alive(EVIL, 9, meta_of("evil", MAX_MEMORY_BYTES + 1)))
    assert reasons(events) == ["implausible memory size"]
    assert table(a)[EVIL][2].memory_bytes == 8 << 30
    ring = a.ring
    assert ring is not None and [s.node_id for s in ring.members] == sorted([A, B, EVIL])


def test_malformed_node_ids_and_epochs_are_dropped() -> None:
    nodes = pool()
    a = nodes[A]
    before = table(a)
    events = say(
        a,
        Alive("evil-twin", 1, meta_of("x")),
        Suspect(B, 0, "not a node"),
        RingReport(A, 2**64 - 1, "ab" * 32),
        body=Ping(1, A),
    )
    assert sorted(reasons(events)) == [
        "malformed node id",
        "malformed node id",
        "ring epoch too large",
    ]
    assert table(a) == before


def test_member_table_is_capped() -> None:
    a = make(A)
    for i in range(20):
        sender = node_id(i + 1)
        a.receive_message(
            sender, encode(Message(Gossip(), 0, "", (Alive(sender, 0, meta_of("x")),))), 1.0
        )
    assert len(a.members()) == CONFIG.max_members
    assert "member table full" in reasons(drain(a))


def test_a_rejected_revocation_blob_is_verified_once() -> None:
    calls: list[bytes] = []

    def verify(entry: bytes) -> str | None:
        calls.append(entry)
        return None

    a = make(A, verify)
    for _ in range(10):
        a.receive_message(EVIL, encode(Message(Gossip(), 0, "", (Revoke(b"bogus"),))), 1.0)
    assert calls == [b"bogus"]
    blobs = tuple(b"bogus-%d" % i for i in range(100))
    a.receive_message(EVIL, encode(Message(PushPull(True, (), blobs))), 1.0)
    assert len(calls) <= 1 + 4


def test_every_node_a_revocation_blob_names_is_revoked() -> None:
    a2 = make(A, lambda e: frozenset({B, EVIL}) if e == b"two" else None)
    a2.receive_message(B, encode(Message(Gossip(), 0, "", (Alive(B, 0, meta_of("b")),))), 1.0)
    a2.receive_message(EVIL, encode(Message(Gossip(), 0, "", (Alive(EVIL, 0, meta_of("e")),))), 1.0)
    a2.add_revocations([b"two"])
    assert {m.node_id for m in a2.members() if m.state is MemberState.ALIVE} == {A}


def test_ghost_hints_are_asked_a_few_times_then_forgotten() -> None:
    nodes = pool()
    a = nodes[A]
    ghosts = tuple(MemberRecord(node_id(i), meta_of("g"), MemberState.ALIVE, 0) for i in range(50))
    say(a, body=PushPull(True, ghosts))
    asked: dict[str, int] = {}
    now = 1.0
    while now < 10.0:
        now += 0.1
        if (timer := a.get_timer()) is not None and timer <= now:
            a.handle_timer(now)
        for to, _ in a.messages_to_send():
            asked[to] = asked.get(to, 0) + 1
    hinted = [n for n in asked if n not in (B, EVIL)]
    assert 0 < len(hinted) <= CONFIG.max_hints
    assert (
        max(asked[n] for n in hinted) <= 2 * CONFIG.push_pull_interval / CONFIG.probe_interval + 1
    )
    assert not any(a.wanted(n) for n in hinted)  # the agent drops their links
    assert a.wanted(B) and set(table(a)) == {A, B, EVIL}
