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
A, B, C = ("node-" + x * 16 for x in "abc")


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
    nodes = {A: make(A, 1), B: make(B, 2)}
    nodes[B].add_seed(A, NodeMeta("dev-a", "10.0.0.1:7000"))
    exchange(nodes, 0.0)
    return nodes


def test_single_node_has_a_converged_ring_of_itself() -> None:
    p = make("node-" + "5" * 16)
    events = drain(p)
    assert isinstance(events[0], RingChanged) and isinstance(events[1], RingConverged)
    assert p.ring is not None and [(s.start, s.end) for s in p.ring.members] == [(0, 8192)]


def test_join_by_seed_and_convergence() -> None:
    nodes = joined_pair()
    a_events = drain(nodes[A])
    assert any(isinstance(e, MemberJoined) and e.node_id == B for e in a_events)
    assert nodes[A].converged and nodes[B].converged
    assert nodes[A].ring == nodes[B].ring
    assert {m.node_id: m.status for m in nodes[A].members()} == {A: "ONLINE", B: "ONLINE"}


def test_ping_is_answered_with_ack_of_same_seq() -> None:
    a = make(A)
    a.receive_message(B, encode(Message(Ping(77, A))), 1.0)
    [(to, data)] = a.messages_to_send()
    assert to == B and decode(data).body == Ack(77)


def test_misaddressed_ping_and_garbage_are_dropped_with_reason() -> None:
    a = make(A)
    drain(a)
    a.receive_message(B, encode(Message(Ping(1, "node-" + "f" * 16))), 1.0)
    a.receive_message(B, b"MG\x01garbage", 1.0)
    reasons = [e.reason for e in drain(a) if isinstance(e, MessageDropped)]
    assert reasons[0] == "ping for another node" and reasons[1].startswith("decode error")
    assert a.messages_to_send() == []


def test_unanswered_probes_lead_to_suspect_then_dead_and_a_new_ring() -> None:
    nodes = joined_pair()
    drain(nodes[A])
    alone = {A: nodes[A]}  # b crashed: nothing reaches it any more
    tick(alone, 1.0)
    assert {m.node_id: m.state for m in nodes[A].members()}[B] is MemberState.SUSPECT
    tick(alone, 4.0)
    changes = [e for e in drain(nodes[A]) if isinstance(e, MemberStateChanged)]
    assert [(c.old, c.new) for c in changes] == [
        (MemberState.ALIVE, MemberState.SUSPECT),
        (MemberState.SUSPECT, MemberState.DEAD),
    ]
    ring = nodes[A].ring
    assert ring is not None and len(ring.members) == 1


def test_suspicion_of_self_is_refuted_with_a_higher_incarnation() -> None:
    nodes = joined_pair()
    b = nodes[B]
    rumour = Message(Gossip(), 0, "", (Suspect(B, 0, A),))
    b.receive_message(A, encode(rumour), 1.0)
    assert b.incarnation == 1
    b.handle_timer(b.get_timer() or 0.0)  # the next gossip tick carries the refutation
    out = [decode(d) for _, d in b.messages_to_send()]
    assert Alive(B, 1, b.members()[1].meta) in [x for m in out for x in m.broadcasts]


def test_indirect_probe_keeps_member_alive_when_direct_path_fails() -> None:
    nodes = {n: make(n, i) for i, n in enumerate((A, B, C))}
    nodes[B].add_seed(A, NodeMeta("", ""))
    nodes[C].add_seed(A, NodeMeta("", ""))
    exchange(nodes, 0.0)
    tick(nodes, 1.0)
    drain(nodes[A])

    now = 1.0
    for _ in range(60):  # a <-> c direct messages are lost, everything else flows
        now += 0.05
        for p in nodes.values():
            if (t := p.get_timer()) is not None and t <= now:
                p.handle_timer(now)
        for _ in range(4):
            for src, p in nodes.items():
                for to, data in p.messages_to_send():
                    if {src, to} != {A, C}:
                        nodes[to].receive_message(src, data, now)
    states = {m.node_id: m.state for m in nodes[A].members()}
    assert states[C] is MemberState.ALIVE
    assert not any(isinstance(e, MemberStateChanged) for e in drain(nodes[A]))


def test_revocation_is_verified_spread_and_final() -> None:
    nodes = joined_pair()
    drain(nodes[B])
    nodes[A].add_revocations([b"revoke:" + B.encode(), b"forged"])
    events_a = drain(nodes[A])
    assert MemberRevoked(B) in events_a
    assert any(isinstance(e, MessageDropped) for e in events_a)
    out = [decode(d) for _, d in nodes[A].messages_to_send()]
    assert out == []  # nothing queued to b (revoked) and no other peer
    nodes[C] = make(C, 3)
    nodes[C].add_seed(A, NodeMeta("", ""))
    exchange(nodes, 0.1)
    assert MemberRevoked(B) in drain(nodes[C])
    nodes[C].receive_message(B, encode(Message(Gossip())), 0.2)
    assert [e for e in drain(nodes[C]) if isinstance(e, MessageDropped)] == [
        MessageDropped(B, "revoked sender")
    ]
    assert B not in [s.node_id for s in nodes[C].ring.members]  # type: ignore[union-attr]


def test_leave_tells_peers_and_goes_quiet() -> None:
    nodes = joined_pair()
    drain(nodes[A])
    nodes[B].leave(1.0)
    assert nodes[B].get_timer() is None
    exchange(nodes, 1.0)
    states = {m.node_id: m.state for m in nodes[A].members()}
    assert states[B] is MemberState.LEFT
    ring = nodes[A].ring
    assert ring is not None and [s.node_id for s in ring.members] == [A]


def test_an_idle_pool_wakes_for_probes_not_for_empty_gossip_rounds() -> None:
    nodes = joined_pair()
    now = tick(nodes, 20.0)  # joined, converged, every broadcast retired
    machine, wakes, end = nodes[A], 0, now + 10.0
    while (deadline := machine.get_timer()) is not None and deadline < end:
        now = max(now, deadline)
        machine.handle_timer(now)
        wakes += 1
        exchange(nodes, now)
    assert machine.converged and len(machine.members()) == 2
    # each probe is a wake, its ack timeout maybe another; a gossip round every
    # 0.2 s with nothing to say would add 50
    assert wakes <= 2 * 10.0 / CONFIG.probe_interval + 10.0 / CONFIG.push_pull_interval + 2


def test_a_pool_of_one_wakes_only_to_probe_for_newcomers() -> None:
    machine = make(A)
    now, wakes = 0.0, 0
    while (deadline := machine.get_timer()) is not None and deadline < 10.0:
        now = max(now, deadline)
        machine.handle_timer(now)
        machine.messages_to_send()
        wakes += 1
    # its own news has nobody to go to: no gossip round every 0.2 s for it
    assert wakes <= 10.0 / CONFIG.probe_interval + 10.0 / CONFIG.push_pull_interval + 2
