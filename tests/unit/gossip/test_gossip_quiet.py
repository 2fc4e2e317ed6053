"""An idle pool is quiet. A member that probes this node is not probed back (an idle
pair sends one PING and ACK per interval, not two), yet a crash of either is still found
in time and both keep round-trip figures; a converged pool exchanges full state at the
slower pace."""

from __future__ import annotations

import random
from collections import Counter
from itertools import pairwise

from reconciler.gossip.config import GossipConfig
from reconciler.gossip.machine import GossipProtocol
from reconciler.gossip.messages import NodeMeta, Ping, PushPull, decode
from reconciler.gossip.probing import RTT_REFRESH
from reconciler.gossip.states import MemberState
from reconciler.gossip.suspicion import min_suspicion_timeout

CONFIG = GossipConfig(pool_id="pool-q")
A, B = "node-" + "a" * 16, "node-" + "b" * 16
STEP = 0.01
LATEST = 1.25  # intervals: a quiet member probes again at most a quarter interval late


def make(node_id: str, seed: int) -> GossipProtocol:
    meta = NodeMeta(f"dev-{node_id}", "10.0.0.1:7000", 1 << 30, 2)
    return GossipProtocol(node_id, meta, CONFIG, random.Random(seed), 0.0)


def run(
    nodes: dict[str, GossipProtocol],
    start: float,
    until: float,
    sent: list[tuple[float, str]],
    kind: type = Ping,
    wakes: Counter[str] | None = None,
) -> float:
    """Fire due timers every STEP and deliver at once among ``nodes`` (others are down);
    note when each message of ``kind`` is sent and by whom, and count timer wakes."""
    now = start
    while now < until:
        now += STEP
        for node_id, p in nodes.items():
            timer = p.get_timer()
            if timer is not None and timer <= now:
                p.handle_timer(now)
                if wakes is not None:
                    wakes[node_id] += 1
        for _ in range(6):
            batch = [(s, to, d) for s, p in nodes.items() for to, d in p.messages_to_send()]
            for src, to, data in batch:
                body = decode(data).body
                if isinstance(body, kind) and not (isinstance(body, PushPull) and body.is_reply):
                    sent.append((now, src))
                if to in nodes:
                    nodes[to].receive_message(src, data, now)
    return now


def joined_pair() -> tuple[dict[str, GossipProtocol], float]:
    nodes = {A: make(A, 1), B: make(B, 2)}
    nodes[B].add_seed(A, NodeMeta("dev-a", "10.0.0.1:7000"))
    now = run(nodes, 0.0, 20.0, [])  # joined, converged, broadcasts retired
    assert nodes[A].converged and nodes[B].converged
    return nodes, now


def test_an_idle_pair_pings_once_per_interval_not_twice() -> None:
    nodes, now = joined_pair()
    pings: list[tuple[float, str]] = []
    window = 20.0
    run(nodes, now, now + window, pings)
    intervals = window / CONFIG.probe_interval
    refreshes = window / RTT_REFRESH + 1
    # each probing the other every interval would be 2 * intervals (100 here)
    assert len(pings) <= intervals + 2 * refreshes + 2
    assert len(pings) >= window / (LATEST * CONFIG.probe_interval) - 1
    gaps = [later - earlier for (earlier, _), (later, _) in pairwise(pings)]
    assert max(gaps) <= LATEST * CONFIG.probe_interval + STEP  # never silent longer
    for node_id, peer in ((A, B), (B, A)):
        assert nodes[node_id].link_stats()[peer].rtt_s is not None


def test_the_quiet_member_still_finds_its_prober_crashed_in_time() -> None:
    nodes, now = joined_pair()
    pings: list[tuple[float, str]] = []
    now = run(nodes, now, now + 10.0, pings)
    while not pings or pings[-1][0] < now:  # the worst moment: just after a probe of us
        now = run(nodes, now, now + STEP, pings)
    prober = pings[-1][1]
    quiet = B if prober == A else A
    crashed_at = now
    survivor = {quiet: nodes[quiet]}
    # at worst: the quiet intervals after that probe, one probe interval unanswered,
    # and the suspicion timeout
    interval = CONFIG.probe_interval
    suspicion = min_suspicion_timeout(CONFIG.suspicion_mult, 2, interval)
    bound = LATEST * interval + interval + suspicion + 2 * STEP
    dead_at = None
    while dead_at is None and now < crashed_at + 10.0:
        now = run(survivor, now, now + STEP, [])
        states = {m.node_id: m.state for m in nodes[quiet].members()}
        if states[prober] is MemberState.DEAD:
            dead_at = now
    assert dead_at is not None and dead_at - crashed_at <= bound


def test_a_converged_pair_exchanges_full_state_at_the_slower_pace() -> None:
    nodes, now = joined_pair()
    exchanges: list[tuple[float, str]] = []
    window = 40.0
    run(nodes, now, now + window, exchanges, PushPull)
    fast_pace = 2 * 2 * window / CONFIG.push_pull_interval  # both sides: request + reply
    assert len(exchanges) <= fast_pace / 4
    assert len(exchanges) >= 2  # never silent: anti-entropy still runs


def test_an_idle_pair_wakes_only_to_probe() -> None:
    nodes, now = joined_pair()
    for p in nodes.values():  # a kernel speed and free memory to state every few seconds
        p.set_local_measures(2e9, 1 << 30)
    wakes: Counter[str] = Counter()
    pings: list[tuple[float, str]] = []
    now = run(nodes, now, now + 30.0, pings, Ping, wakes)
    for p in nodes.values():
        assert p.measure_reports(now)[p.self_id].speed_bytes_per_s == 2e9
    for node_id, peer in ((A, B), (B, A)):  # statements went out (riding on probe wakes)
        assert nodes[peer].measure_reports(now)[node_id].speed_bytes_per_s == 2e9
    for node_id in nodes:
        own = sum(1 for _, src in pings if src == node_id)
        assert wakes[node_id] <= own + 2  # each wake a probe round (its PING sent)
