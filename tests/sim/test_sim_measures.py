"""Measurements on the simulated network: round trips and throughput come from what the
links really cost, and every node ends up holding the same table."""

from __future__ import annotations

import pytest

from reconciler.placement.observed import plan_inputs
from tests.sim.simnet import SimNet, start_pool

ONE_WAY = 0.002  # seconds of latency each way
RATE = 1e8  # bytes per second of every link


class SizedNet(SimNet):
    """A network whose delay is latency plus size over a link rate (no loss)."""

    def _transmit(self, src: str, dst: str, data: bytes) -> None:
        self._push(self.now + ONE_WAY + len(data) / RATE, "msg", dst, -1, data, src)


def measured_pool(n: int) -> tuple[SizedNet, list[str]]:
    net = SizedNet(seed=n)
    ids = start_pool(net, n)
    for i, node_id in enumerate(ids):
        net.nodes[node_id].protocol.set_local_measures(1e9 * (i + 1), (i + 1) << 30)
        net.flush(node_id)
    net.run_for(12.0)
    return net, ids


def test_round_trip_and_throughput_match_the_link() -> None:
    net, ids = measured_pool(3)
    for node_id in ids:
        stats = net.nodes[node_id].protocol.link_stats()
        assert sorted(stats) == sorted(set(ids) - {node_id})
        for stat in stats.values():
            assert stat.rtt_s == pytest.approx(2 * ONE_WAY, rel=0.05)
            assert stat.bytes_per_s == pytest.approx(RATE, rel=0.05)


def test_every_node_holds_the_same_table() -> None:
    net, ids = measured_pool(3)
    tables = []
    for node_id in ids:
        proto = net.nodes[node_id].protocol
        members, links = plan_inputs(proto.members(), proto.measure_reports(net.now))
        tables.append((members, links))
        assert [m.free_memory for m in members] == [1 << 30, 2 << 30, 3 << 30]
        assert [m.weight_bytes_per_s for m in members] == [1e9, 2e9, 3e9]
        assert len(links) == 3
    # the links' figures are means of two smoothed ends: equal up to rounding to 1 us
    for members, links in tables[1:]:
        assert members == tables[0][0]
        for link, first in zip(links, tables[0][1], strict=True):
            assert (link.a, link.b) == (first.a, first.b)
            assert link.rtt_s == pytest.approx(first.rtt_s, abs=2e-6)


def test_a_crashed_member_leaves_the_table() -> None:
    net, ids = measured_pool(3)
    net.crash(ids[2])
    net.run_for(15.0)
    proto = net.nodes[ids[0]].protocol
    members, links = plan_inputs(proto.members(), proto.measure_reports(net.now))
    assert [m.node_id for m in members] == ids[:2]
    assert [(link.a, link.b) for link in links] == [(ids[0], ids[1])]
