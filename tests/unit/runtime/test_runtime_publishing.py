"""What a pool runtime publishes, read from real gossip machines joined by hand: the
peers listing (everyone but this node, with link counters, beacons and how each was
found), the measure table, the ring document and the beacon counters."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from types import SimpleNamespace

from reconciler.drivers.peerlinks import LinkStats
from reconciler.gossip.config import GossipConfig
from reconciler.gossip.linkstats import LinkStat, MeasureReport
from reconciler.gossip.machine import GossipProtocol
from reconciler.gossip.messages import NodeMeta
from reconciler.runtime.publishing import (
    PeerSources,
    beacon_stats,
    found_by,
    measure_fields,
    measure_table,
    peer_rows,
    ring_document,
)

CONFIG = GossipConfig(pool_id="pool-x")
A, B, C = ("node-" + x * 16 for x in "abc")
NOW = 50.0


def _machine(node_id: str, seed: int) -> GossipProtocol:
    meta = NodeMeta(f"dev-{node_id[5]}", f"10.0.0.{seed}:7000", (seed + 1) << 30, seed + 1)
    return GossipProtocol(node_id, meta, CONFIG, random.Random(seed), 0.0)


def _pool_of_three() -> dict[str, GossipProtocol]:
    """A, B and C, each knowing the other two (B and C were seeded with A)."""
    nodes = {A: _machine(A, 1), B: _machine(B, 2), C: _machine(C, 3)}
    nodes[B].add_seed(A, NodeMeta("dev-a", "10.0.0.1:7000"))
    nodes[C].add_seed(A, NodeMeta("dev-a", "10.0.0.1:7000"))
    now = 0.0
    for _ in range(200):  # until every view holds the three and agrees on the ring
        now += 0.05
        for machine in nodes.values():
            timer = machine.get_timer()
            if timer is not None and timer <= now:
                machine.handle_timer(now)
        for _ in range(4):
            batch = [(s, to, d) for s, m in nodes.items() for to, d in m.messages_to_send()]
            for src, to, data in batch:
                nodes[to].receive_message(src, data, now)
        if all(len(m.members()) == 3 and m.converged for m in nodes.values()):
            return nodes
    raise AssertionError("the three machines never converged")


def _sources(**overrides: object) -> PeerSources:
    fields: dict[str, object] = {"node_id": A, "links": {}, "beacon_peers": {}, "rendezvous_met": ()}
    fields.update(overrides)
    return PeerSources(**fields)  # type: ignore[arg-type]


def test_the_peers_listing_has_every_other_member_and_never_this_node() -> None:
    gossip = _pool_of_three()[A]
    rows = peer_rows(gossip, _sources(), NOW, {})
    assert sorted(r["nodeId"] for r in rows) == [B, C]
    by_id = {r["nodeId"]: r for r in rows}
    assert (by_id[B]["name"], by_id[B]["address"]) == ("dev-b", "10.0.0.2:7000")
    assert (by_id[C]["memoryBytes"], by_id[C]["cores"]) == (4 << 30, 4)
    assert {r["status"] for r in rows} == {"ONLINE"}


def test_a_peer_with_a_link_shows_its_counters_and_route_others_show_none() -> None:
    gossip = _pool_of_three()[A]
    link = LinkStats(connected=True, bytes_sent=1200, bytes_received=340, route="relay")
    rows = {r["nodeId"]: r for r in peer_rows(gossip, _sources(links={B: link}), NOW, {})}
    assert (rows[B]["linkConnected"], rows[B]["bytesSent"], rows[B]["bytesReceived"]) == (
        True, 1200, 340
    )  # fmt: skip
    assert rows[B]["route"] == "relay"
    assert (rows[C]["linkConnected"], rows[C]["bytesSent"], rows[C]["route"]) == (
        False, 0, "direct"
    )  # fmt: skip


def test_beacon_counts_and_clock_skew_come_from_what_the_beacons_told() -> None:
    gossip = _pool_of_three()[A]
    heard = {B: {"beacons": 7, "clockSkew": -0.25, "lastBeacon": 1.0}}
    rows = {r["nodeId"]: r for r in peer_rows(gossip, _sources(beacon_peers=heard), NOW, {})}
    assert (rows[B]["beacons"], rows[B]["clockSkew"]) == (7, -0.25)
    assert (rows[C]["beacons"], rows[C]["clockSkew"]) == (0, None)


def test_how_a_peer_was_found_prefers_its_beacon_then_a_rendezvous() -> None:
    sources = _sources(beacon_peers={B: {"beacons": 1}}, rendezvous_met={B, C})
    assert found_by(sources, B) == "beacon"
    assert found_by(sources, C) == "rendezvous"
    assert found_by(sources, "node-" + "d" * 16) == "gossip"
    rows = peer_rows(_pool_of_three()[A], sources, NOW, {})
    assert {r["nodeId"]: r["foundBy"] for r in rows} == {B: "beacon", C: "rendezvous"}


def test_measured_figures_fill_the_rows_and_unmeasured_peers_show_nulls() -> None:
    gossip = _pool_of_three()[A]
    measured = {B: measure_fields(LinkStat(0.0012345678, 2.6e6), MeasureReport(9.4e8, 1 << 30))}
    rows = {r["nodeId"]: r for r in peer_rows(gossip, _sources(), NOW, measured)}
    assert rows[B]["rttSeconds"] == 0.001235
    assert rows[B]["throughputBytesPerSecond"] == 2_600_000
    assert (rows[B]["speedBytesPerSecond"], rows[B]["freeMemoryBytes"]) == (940_000_000, 1 << 30)
    unmeasured = {"rttSeconds", "throughputBytesPerSecond", "speedBytesPerSecond",
                  "freeMemoryBytes"}  # fmt: skip
    assert all(rows[C][key] is None for key in unmeasured)


def test_measure_fields_keep_nones_where_only_part_was_measured() -> None:
    fields = measure_fields(LinkStat(rtt_s=0.002, bytes_per_s=None), None)
    assert fields == {"rttSeconds": 0.002, "throughputBytesPerSecond": None,
                      "speedBytesPerSecond": None, "freeMemoryBytes": None}  # fmt: skip


def test_the_measure_table_holds_this_nodes_own_statement() -> None:
    gossip = _pool_of_three()[A]
    gossip.set_local_measures(speed_bytes_per_s=1.5e9, free_memory=3 << 30)
    table = measure_table(gossip, NOW)
    assert set(table) == {A, B, C}
    assert (table[A]["speedBytesPerSecond"], table[A]["freeMemoryBytes"]) == (
        1_500_000_000, 3 << 30
    )  # fmt: skip


def test_the_ring_document_splits_every_column_among_the_members() -> None:
    gossip = _pool_of_three()[B]
    document = ring_document(gossip)
    assert document is not None and document["converged"] is True
    members = document["members"]
    assert sorted(m["nodeId"] for m in members) == [A, B, C]
    shards = sorted((m["shard"]["start"], m["shard"]["end"]) for m in members)
    assert shards[0][0] == 0 and shards[-1][1] == CONFIG.shard_columns
    assert all(left[1] == right[0] for left, right in itertools.pairwise(shards))


def test_beacon_stats_copy_counters_and_leave_out_the_last_beacon_time() -> None:
    loopback = SimpleNamespace(name="lo", address="127.0.0.1")
    sockets = SimpleNamespace(interface=loopback, interfaces=[loopback],
                              pump=SimpleNamespace(sent=12, received=9))  # fmt: skip
    beacon = SimpleNamespace(drops=Counter({"bad-signature": 2}))
    peers = {B: {"beacons": 3, "name": "dev-b", "lastBeacon": 1234.5}}
    stats = beacon_stats(beacon, sockets, peers)  # type: ignore[arg-type]
    assert stats["interface"] == {"name": "lo", "address": "127.0.0.1"}
    assert (stats["sent"], stats["received"], stats["drops"]) == (12, 9, {"bad-signature": 2})
    assert stats["peers"] == {B: {"beacons": 3, "name": "dev-b"}}
    assert peers[B]["lastBeacon"] == 1234.5  # the runtime's own table is left alone
