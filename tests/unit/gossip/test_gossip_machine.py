"""GossipProtocol driven by hand: two or three machines, explicit clock, no network."""

from __future__ import annotations

import random

from reconciler.gossip.config import GossipConfig
from reconciler.gossip.events import (
    Event,
    MemberJoined,
    MemberRevoked,
    MemberStateChanged,
    MessageDropped,
    RingChanged,
    RingConverged,
)
from reconciler.gossip.machine import GossipProtocol
from reconciler.gossip.messages import (
    Ack,
    Alive,
    Gossip,
    Message,
    NodeMeta,
    Ping,
    Suspect,
    decode,
    encode,
)
from reconciler.gossip.states import MemberState

CONFIG = GossipConfig(pool_id="pool-x")


def make(node_id: str, seed: int = 0) -> GossipProtocol:
    meta = NodeMeta(f"dev-{node_id}", f"10.0.0.{len(node_id)}:7000", 1 << 30, 2)
    verify = lambda e: e[7:].decode() if e.startswith(b"revoke:") else None  # noqa: E731
    return GossipProtocol(node_id, meta, CONFIG, random.Random(seed), 0.0, verify=verify)


def drain(p: GossipProtocol) -> list[Event]:
    events = []
    while (e := p.next_event()) is not None:
        events.append(e)
    return events


def exchange(nodes: dict[str, GossipProtocol], now: float, rounds: int = 6) -> None:
    """Deliver everything in flight, instantly, until quiet."""
    for _ in range(rounds):
        batch = [(src, to, data) for src, p in nodes.items() for to, data in p.messages_to_send()]
        for src, to, data in batch:
            if to in nodes:
                nodes[to].receive_message(src, data, now)


def tick(nodes: dict[str, GossipProtocol], until: float, step: float = 0.05) -> float:
    now = 0.0
    while now < until:
        now += step
        for p in nodes.values():
            timer = p.get_timer()
            if timer is not None and timer <= now:
                p.handle_timer(now)
        exchange(nodes, now)
    return now


def joined_pair() -> dict[str, GossipProtocol]:
    nodes = {"a": make("a", 1), "b": make("b", 2)}
    nodes["b"].add_seed("a", NodeMeta("dev-a", "10.0.0.1:7000"))
    exchange(nodes, 0.0)
    return nodes


def test_single_node_has_a_converged_ring_of_itself() -> None:
    p = make("solo")
    events = drain(p)
    assert isinstance(events[0], RingChanged) and isinstance(events[1], RingConverged)
    assert p.ring is not None and [(s.start, s.end) for s in p.ring.members] == [(0, 8192)]


def test_join_by_seed_and_convergence() -> None:
    nodes = joined_pair()
    a_events = drain(nodes["a"])
    assert any(isinstance(e, MemberJoined) and e.node_id == "b" for e in a_events)
    assert nodes["a"].converged and nodes["b"].converged
    assert nodes["a"].ring == nodes["b"].ring
    assert {m.node_id: m.status for m in nodes["a"].members()} == {"a": "ONLINE", "b": "ONLINE"}


def test_ping_is_answered_with_ack_of_same_seq() -> None:
    a = make("a")
    a.receive_message("b", encode(Message(Ping(77, "a"))), 1.0)
    [(to, data)] = a.messages_to_send()
    assert to == "b" and decode(data).body == Ack(77)


def test_misaddressed_ping_and_garbage_are_dropped_with_reason() -> None:
    a = make("a")
    drain(a)
    a.receive_message("b", encode(Message(Ping(1, "zzz"))), 1.0)
    a.receive_message("b", b"MG\x01garbage", 1.0)
    reasons = [e.reason for e in drain(a) if isinstance(e, MessageDropped)]
    assert reasons[0] == "ping for another node" and reasons[1].startswith("decode error")
    assert a.messages_to_send() == []


def test_unanswered_probes_lead_to_suspect_then_dead_and_a_new_ring() -> None:
    nodes = joined_pair()
    drain(nodes["a"])
    alone = {"a": nodes["a"]}  # b crashed: nothing reaches it any more
    tick(alone, 1.0)
    assert {m.node_id: m.state for m in nodes["a"].members()}["b"] is MemberState.SUSPECT
    tick(alone, 4.0)
    changes = [e for e in drain(nodes["a"]) if isinstance(e, MemberStateChanged)]
    assert [(c.old, c.new) for c in changes] == [
        (MemberState.ALIVE, MemberState.SUSPECT),
        (MemberState.SUSPECT, MemberState.DEAD),
    ]
    assert nodes["a"].ring is not None and len(nodes["a"].ring.members) == 1


def test_suspicion_of_self_is_refuted_with_a_higher_incarnation() -> None:
    nodes = joined_pair()
    b = nodes["b"]
    rumour = Message(Gossip(), 0, "", (Suspect("b", 0, "a"),))
    b.receive_message("a", encode(rumour), 1.0)
    assert b.incarnation == 1
    b.handle_timer(b.get_timer() or 0.0)  # the next gossip tick carries the refutation
    out = [decode(d) for _, d in b.messages_to_send()]
    assert Alive("b", 1, b.members()[1].meta) in [x for m in out for x in m.broadcasts]


def test_indirect_probe_keeps_member_alive_when_direct_path_fails() -> None:
    nodes = {n: make(n, i) for i, n in enumerate("abc")}
    nodes["b"].add_seed("a", NodeMeta("", ""))
    nodes["c"].add_seed("a", NodeMeta("", ""))
    exchange(nodes, 0.0)
    tick(nodes, 1.0)
    drain(nodes["a"])

    now = 1.0
    for _ in range(60):  # a <-> c direct messages are lost, everything else flows
        now += 0.05
        for p in nodes.values():
            if (t := p.get_timer()) is not None and t <= now:
                p.handle_timer(now)
        for _ in range(4):
            for src, p in nodes.items():
                for to, data in p.messages_to_send():
                    if {src, to} != {"a", "c"}:
                        nodes[to].receive_message(src, data, now)
    states = {m.node_id: m.state for m in nodes["a"].members()}
    assert states["c"] is MemberState.ALIVE
    assert not any(isinstance(e, MemberStateChanged) for e in drain(nodes["a"]))


def test_revocation_is_verified_spread_and_final() -> None:
    nodes = joined_pair()
    drain(nodes["b"])
    nodes["a"].add_revocations([b"revoke:b", b"forged"])
    events_a = drain(nodes["a"])
    assert MemberRevoked("b") in events_a
    assert any(isinstance(e, MessageDropped) for e in events_a)
    out = [decode(d) for _, d in nodes["a"].messages_to_send()]
    assert out == []  # nothing queued to b (revoked) and no other peer
    nodes["c"] = make("c", 3)
    nodes["c"].add_seed("a", NodeMeta("", ""))
    exchange(nodes, 0.1)
    assert MemberRevoked("b") in drain(nodes["c"])
    nodes["c"].receive_message("b", encode(Message(Gossip())), 0.2)
    assert [e for e in drain(nodes["c"]) if isinstance(e, MessageDropped)] == [
        MessageDropped("b", "revoked sender")
    ]
    assert "b" not in [s.node_id for s in nodes["c"].ring.members]  # type: ignore[union-attr]


def test_leave_tells_peers_and_goes_quiet() -> None:
    nodes = joined_pair()
    drain(nodes["a"])
    nodes["b"].leave(1.0)
    assert nodes["b"].get_timer() is None
    exchange(nodes, 1.0)
    states = {m.node_id: m.state for m in nodes["a"].members()}
    assert states["b"] is MemberState.LEFT
    assert nodes["a"].ring is not None and [s.node_id for s in nodes["a"].ring.members] == ["a"]
