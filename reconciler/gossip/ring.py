"""The ring: alive members in a deterministic order with their shard column ranges.

``compute_ring`` is pure. Members are ordered by ``node_id`` (positions 0..N-1) and
the columns ``[0, shard_columns)`` are split into contiguous ranges, one per member,
that exactly cover the interval:

- ``equal``: ``shard_columns // N`` each; the first ``shard_columns % N`` positions
  get one more column (two members: 0-4096 and 4096-8192);
- ``memory``: proportional to ``memory_bytes`` by the largest-remainder method in
  integer arithmetic (ties go to the lower position), every member at least one
  column; if no member reports memory the split is equal.

The hash is the SHA-256 of a canonical JSON encoding of the pool id, the column
count and every member's id, name, address, position and range. The epoch is *not*
hashed: it is a Lamport-style counter agreed through gossip (see ``machine.py``), so
the hash alone says whether two nodes computed the same ring.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

DEFAULT_SHARD_COLUMNS = 8192

Weighting = Literal["equal", "memory"]


@dataclass(frozen=True, slots=True)
class RingMember:
    """A member as the ring needs it."""

    node_id: str
    name: str
    address: str
    memory_bytes: int = 0


@dataclass(frozen=True, slots=True)
class RingSlot:
    """One member's place in the ring: position and column range [start, end)."""

    node_id: str
    name: str
    address: str
    position: int
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Ring:
    """A computed ring; ``hash`` is hex SHA-256 over everything but ``epoch``."""

    pool_id: str
    epoch: int
    hash: str
    shard_columns: int
    members: tuple[RingSlot, ...]

    def with_epoch(self, epoch: int) -> Ring:
        return replace(self, epoch=epoch)

    def slot(self, node_id: str) -> RingSlot | None:
        return next((s for s in self.members if s.node_id == node_id), None)

    def to_topology_json(self, converged: bool = True) -> dict[str, Any]:
        """The content of ``ring_topology_<pool_id>.json``."""
        return {
            "poolId": self.pool_id,
            "epoch": self.epoch,
            "hash": self.hash,
            "converged": converged,
            "shardColumns": self.shard_columns,
            "members": [
                {
                    "nodeId": s.node_id,
                    "name": s.name,
                    "position": s.position,
                    "address": s.address,
                    "shard": {"start": s.start, "end": s.end},
                }
                for s in self.members
            ],
        }


def split_equal(count: int, columns: int) -> list[int]:
    """Column counts for ``count`` members sharing ``columns`` equally."""
    base, extra = divmod(columns, count)
    return [base + (1 if i < extra else 0) for i in range(count)]


def split_weighted(weights: Sequence[int], columns: int) -> list[int]:
    """Largest-remainder split of ``columns`` by integer ``weights``, each >= 1."""
    total = sum(weights)
    if total <= 0:
        return split_equal(len(weights), columns)
    shares = [divmod(columns * w, total) for w in weights]
    sizes = [q for q, _ in shares]
    order = sorted(range(len(weights)), key=lambda i: (-shares[i][1], i))
    for i in order[: columns - sum(sizes)]:
        sizes[i] += 1
    for i, size in enumerate(sizes):
        if size == 0:
            sizes[i] = 1
            donor = max(range(len(sizes)), key=lambda j: (sizes[j], -j))
            sizes[donor] -= 1
    return sizes


def ring_hash(pool_id: str, shard_columns: int, slots: Sequence[RingSlot]) -> str:
    """Hex SHA-256 of the canonical encoding of a ring (epoch excluded)."""
    doc = {
        "poolId": pool_id,
        "shardColumns": shard_columns,
        "members": [[s.node_id, s.name, s.address, s.position, s.start, s.end] for s in slots],
    }
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def compute_ring(
    pool_id: str,
    members: Sequence[RingMember],
    shard_columns: int = DEFAULT_SHARD_COLUMNS,
    weighting: Weighting = "equal",
    epoch: int = 0,
) -> Ring:
    """Order ``members`` by node id and give each a contiguous column range."""
    ordered = sorted({m.node_id: m for m in members}.values(), key=lambda m: m.node_id)
    if len(ordered) > shard_columns:
        raise ValueError(f"{len(ordered)} members cannot share {shard_columns} columns")
    if not ordered:
        return Ring(pool_id, epoch, ring_hash(pool_id, shard_columns, ()), shard_columns, ())
    if weighting == "memory":
        sizes = split_weighted([m.memory_bytes for m in ordered], shard_columns)
    else:
        sizes = split_equal(len(ordered), shard_columns)
    slots: list[RingSlot] = []
    start = 0
    for position, (member, size) in enumerate(zip(ordered, sizes, strict=True)):
        slots.append(
            RingSlot(member.node_id, member.name, member.address, position, start, start + size)
        )
        start += size
    digest = ring_hash(pool_id, shard_columns, slots)
    return Ring(pool_id, epoch, digest, shard_columns, tuple(slots))
