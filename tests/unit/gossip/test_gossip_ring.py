"""Ring computation: order, column ranges, hash and topology JSON."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.gossip.ring import RingMember, compute_ring, split_weighted

A = RingMember("node-a", "alpha", "10.0.0.1:7000", 8 << 30)
B = RingMember("node-b", "beta", "10.0.0.2:7000", 24 << 30)


def test_two_members_topology_json_exact() -> None:
    ring = compute_ring("pool-1", [B, A], epoch=3)
    assert ring.to_topology_json() == {
        "poolId": "pool-1",
        "epoch": 3,
        "hash": ring.hash,
        "converged": True,
        "shardColumns": 8192,
        "members": [
            {
                "nodeId": "node-a",
                "name": "alpha",
                "position": 0,
                "address": "10.0.0.1:7000",
                "shard": {"start": 0, "end": 4096},
            },
            {
                "nodeId": "node-b",
                "name": "beta",
                "position": 1,
                "address": "10.0.0.2:7000",
                "shard": {"start": 4096, "end": 8192},
            },
        ],
    }


def test_hash_ignores_epoch_and_input_order_but_not_addresses() -> None:
    base = compute_ring("p", [A, B], epoch=1)
    assert compute_ring("p", [B, A], epoch=9).hash == base.hash
    moved = RingMember("node-b", "beta", "10.0.0.9:7000", B.memory_bytes)
    assert compute_ring("p", [A, moved]).hash != base.hash
    assert compute_ring("other", [A, B]).hash != base.hash
    assert compute_ring("p", [A, B], shard_columns=4096).hash != base.hash


def test_memory_weighting() -> None:
    ring = compute_ring("p", [A, B], weighting="memory")
    assert [(s.start, s.end) for s in ring.members] == [(0, 2048), (2048, 8192)]


def test_memory_weighting_without_memory_is_equal() -> None:
    zero = [RingMember("x", "x", "a:1"), RingMember("y", "y", "a:2")]
    ring = compute_ring("p", zero, weighting="memory")
    assert [(s.start, s.end) for s in ring.members] == [(0, 4096), (4096, 8192)]


def test_tiny_member_still_gets_a_column() -> None:
    assert split_weighted([10**12, 1, 1], 8) == [6, 1, 1]


def test_more_members_than_columns_is_refused() -> None:
    members = [RingMember(f"n{i}", "n", "a:1") for i in range(5)]
    with pytest.raises(ValueError):
        compute_ring("p", members, shard_columns=4)


@given(
    st.lists(st.integers(0, 2**40), min_size=1, max_size=64),
    st.integers(64, 10000),
    st.sampled_from(["equal", "memory"]),
)
def test_ranges_cover_columns_exactly(memories: list[int], columns: int, weighting: str) -> None:
    members = [RingMember(f"n{i:02d}", "n", "a:1", m) for i, m in enumerate(memories)]
    ring = compute_ring("p", members, shard_columns=columns, weighting=weighting)  # type: ignore[arg-type]
    slots = ring.members
    assert [s.position for s in slots] == list(range(len(members)))
    assert slots[0].start == 0 and slots[-1].end == columns
    assert all(a.end == b.start for a, b in itertools.pairwise(slots))
    assert all(s.end - s.start >= 1 for s in slots)
    if weighting == "equal":
        sizes = {s.end - s.start for s in slots}
        assert max(sizes) - min(sizes) <= 1
