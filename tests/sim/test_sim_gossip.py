"""Multi-node gossip scenarios on the simulated network (deterministic by seed)."""

from __future__ import annotations

import pytest

from reconciler.gossip.config import GossipConfig
from reconciler.gossip.events import (
    MemberRevoked,
    MemberStateChanged,
    RingConverged,
)
from reconciler.gossip.messages import Gossip, Message, NodeMeta, Suspect, encode
from reconciler.gossip.states import MemberState
from tests.sim.simnet import LinkModel, SimNet, node_name, start_pool

LOSSY = LinkModel(loss=0.10, duplicate=0.10, reorder=0.3, delay=(0.0005, 0.01))


def revocation_verifier(entry: bytes) -> str | None:
    """Test stand-in for the pool's signed revocation list: b"revoke:<node id>"."""
    prefix = b"revoke:"
    return entry[len(prefix) :].decode() if entry.startswith(prefix) else None


def converged_pool(
    n: int, seed: int = 1, link: LinkModel | None = None
) -> tuple[SimNet, list[str]]:
    net = SimNet(seed=seed, link=link, verify=revocation_verifier)
    ids = start_pool(net, n)
    assert net.run_until(net.converged, max_time=20.0) is not None
    return net, ids


@pytest.mark.parametrize("n", [2, 3, 8, 64])
def test_join_and_convergence(n: int) -> None:
    net = SimNet(seed=n)
    ids = start_pool(net, n)
    took = net.run_until(net.converged, max_time=10.0)
    assert took is not None and took <= 10.0
    hashes = {net.nodes[i].protocol.ring.hash for i in ids}  # type: ignore[union-attr]
    assert len(hashes) == 1
    for node_id in ids:
        assert net.events_of(node_id, RingConverged)
        assert all(m.status == "ONLINE" for m in net.nodes[node_id].protocol.members())


def test_two_members_split_columns_in_half() -> None:
    net, ids = converged_pool(2)
    ring = net.nodes[ids[0]].protocol.ring
    assert ring is not None
    doc = ring.to_topology_json()
    assert doc["converged"] is True and doc["shardColumns"] == 8192
    assert [m["shard"] for m in doc["members"]] == [
        {"start": 0, "end": 4096},
        {"start": 4096, "end": 8192},
    ]
    assert doc == net.nodes[ids[1]].protocol.ring.to_topology_json()  # type: ignore[union-attr]


def test_converges_despite_loss_duplication_and_reordering() -> None:
    net = SimNet(seed=7, link=LOSSY)
    start_pool(net, 16)
    assert net.run_until(net.converged, max_time=10.0) is not None


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("n", [2, 3])
def test_crash_reforms_ring_within_three_seconds(n: int, seed: int) -> None:
    net, ids = converged_pool(n, seed=seed)
    net.run_for(1.0 + seed / 7)
    victim = ids[-1]
    net.crash(victim)
    crashed_at = net.now
    survivors = ids[:-1]
    took = net.run_until(lambda: net.converged(survivors), max_time=10.0)
    assert took is not None and took - crashed_at <= 3.0
    view = {m.node_id: m for m in net.nodes[ids[0]].protocol.members()}
    assert view[victim].status == "OFFLINE"


def test_crashed_node_restarts_and_rejoins_with_higher_incarnation() -> None:
    net, ids = converged_pool(3, seed=4)
    net.crash(ids[2])
    assert net.run_until(lambda: net.converged(ids[:2]), max_time=10.0) is not None
    net.restart(ids[2], seeds=[ids[0]])
    assert net.run_until(lambda: net.converged(ids), max_time=10.0) is not None
    assert net.nodes[ids[2]].protocol.incarnation >= 1


def test_partition_then_heal() -> None:
    net, ids = converged_pool(6, seed=3)
    left, right = ids[:3], ids[3:]
    net.partition(left, right)
    split = lambda: all(  # noqa: E731
        [s.node_id for s in net.nodes[i].protocol.ring.members] == (left if i in left else right)  # type: ignore[union-attr]
        and net.nodes[i].protocol.converged
        for i in ids
    )
    assert net.run_until(split, max_time=20.0) is not None
    net.heal()
    assert net.run_until(lambda: net.converged(ids), max_time=20.0) is not None


def test_revocation_spreads_and_revoked_node_is_excluded() -> None:
    net, ids = converged_pool(8, seed=5)
    revoked = ids[5]
    net.nodes[ids[0]].protocol.add_revocations([b"revoke:" + revoked.encode()])
    net.flush(ids[0])
    others = [i for i in ids if i != revoked]
    informed = lambda: all(net.events_of(i, MemberRevoked) for i in others)  # noqa: E731
    t0 = net.now
    took = net.run_until(informed, max_time=5.0)
    assert took is not None and took - t0 <= 2.0
    assert net.run_until(lambda: all_rings_are(net, others), max_time=10.0) is not None
    net.run_for(5.0)
    assert all_rings_are(net, others), "a revoked member must never be re-admitted"


def all_rings_are(net: SimNet, ids: list[str]) -> bool:
    rings = [net.nodes[i].protocol.ring for i in ids]
    return all(r is not None and [s.node_id for s in r.members] == ids for r in rings)


def test_forged_revocation_is_dropped() -> None:
    net, ids = converged_pool(3, seed=6)
    net.nodes[ids[0]].protocol.add_revocations([b"not a revocation"])
    net.flush(ids[0])
    net.run_for(3.0)
    assert net.converged(ids)
    assert not net.events_of(ids[1], MemberRevoked)


def test_graceful_leave_reforms_ring_quickly() -> None:
    net, ids = converged_pool(4, seed=8)
    leaver = ids[1]
    net.nodes[leaver].protocol.leave(net.now)
    net.flush(leaver)
    net.crash(leaver)  # the process exits after its goodbye
    t0 = net.now
    rest = [i for i in ids if i != leaver]
    took = net.run_until(lambda: net.converged(rest), max_time=5.0)
    assert took is not None and took - t0 < 0.5
    states = {m.node_id: m.state for m in net.nodes[ids[0]].protocol.members()}
    assert states[leaver] is MemberState.LEFT


def test_false_suspicion_is_refuted() -> None:
    net, ids = converged_pool(4, seed=9)
    target = ids[2]
    inc = net.nodes[target].protocol.incarnation
    rumour = Message(Gossip(), 0, "", (Suspect(target, inc, ids[3]),))
    net.deliver(ids[3], ids[0], encode(rumour))
    net.run_for(5.0)
    assert net.nodes[target].protocol.incarnation > inc
    assert net.converged(ids)
    changes = [e for _, e in net.events_of(ids[0], MemberStateChanged) if e.node_id == target]
    assert [c.new for c in changes] == [MemberState.SUSPECT, MemberState.ALIVE]


def test_same_seed_same_history() -> None:
    def history(seed: int) -> list[tuple[float, str, str]]:
        net = SimNet(seed=seed, link=LOSSY)
        ids = start_pool(net, 8)
        net.run_for(4.0)
        net.crash(ids[3])
        net.run_for(4.0)
        return [(t, i, repr(e)) for i in ids for t, e in net.nodes[i].events]

    assert history(42) == history(42)
    assert history(42) != history(43)


def test_memory_weighting_gives_bigger_devices_more_columns() -> None:
    config = GossipConfig(pool_id="sim-pool", weighting="memory")
    net = SimNet(seed=2, config=config)
    big, small = node_name(0), node_name(1)
    net.add_node(big, meta=NodeMeta("big", "10.0.0.2:7000", 24 << 30, 8))
    net.add_node(small, seeds=[big], meta=NodeMeta("small", "10.0.0.3:7000", 8 << 30, 4))
    assert net.run_until(net.converged, max_time=5.0) is not None
    ring = net.nodes[big].protocol.ring
    assert ring is not None
    assert [(s.start, s.end) for s in ring.members] == [(0, 6144), (6144, 8192)]
