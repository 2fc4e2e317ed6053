"""The local view of the ring: its epoch, every member's reported (epoch, hash) and
convergence.

Epoch rule (Lamport-style, so that all nodes end up with the same number):

- ``max_seen`` is the highest epoch seen in any report (message headers, ring
  broadcasts, push-pull records);
- when the local ring hash changes, ``epoch = max_seen + 1``;
- when a member reports the *same* hash with a higher epoch, we adopt that epoch;
- a report about ourselves newer than ours (left over from a previous life of this
  node) is outbid with ``max_seen + 1``.

Epochs only move on membership changes, so they settle, and every node ends with the
highest epoch any node gave the final ring. The ring is converged when every member
in it reports exactly our (epoch, hash); ``RingConverged`` is emitted once per pair.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from reconciler.gossip.broadcasts import BroadcastQueue
from reconciler.gossip.config import GossipConfig
from reconciler.gossip.events import Event, RingChanged, RingConverged
from reconciler.gossip.messages import RingReport
from reconciler.gossip.ring import Ring, RingMember, compute_ring

Report = tuple[int, str]


class RingView:
    """Ring, epoch and peer reports of one node."""

    def __init__(
        self,
        self_id: str,
        config: GossipConfig,
        queue: BroadcastQueue,
        emit: Callable[[Event], None],
    ) -> None:
        self._self_id = self_id
        self._config = config
        self._queue = queue
        self._emit = emit
        self.ring: Ring | None = None
        self.max_seen = 0
        self.reports: dict[str, Report] = {}
        self._converged_key: Report | None = None
        self.converged = False

    @property
    def epoch(self) -> int:
        return self.ring.epoch if self.ring else 0

    @property
    def hash(self) -> str:
        return self.ring.hash if self.ring else ""

    def report_of(self, node_id: str) -> Report:
        if node_id == self._self_id:
            return (self.epoch, self.hash)
        return self.reports.get(node_id, (0, ""))

    def _set_epoch(self, epoch: int) -> None:
        assert self.ring is not None
        self.ring = self.ring.with_epoch(epoch)
        self.max_seen = max(self.max_seen, epoch)
        self._queue.push(RingReport(self._self_id, epoch, self.ring.hash))

    def note(self, node_id: str, epoch: int, ring_hash: str) -> bool:
        """Record a member's report (header, broadcast or record); True if it is news."""
        if not ring_hash:
            return False
        self.max_seen = max(self.max_seen, epoch)
        if node_id == self._self_id:
            stale = (epoch, ring_hash) != (self.epoch, self.hash) and epoch >= self.epoch
            if self.ring and stale:
                self._set_epoch(self.max_seen + 1)
            return False
        old = self.reports.get(node_id)
        news = old is None or epoch > old[0]
        if news:
            self.reports[node_id] = (epoch, ring_hash)
        if self.ring and ring_hash == self.ring.hash and epoch > self.epoch:
            self._set_epoch(epoch)
        return news

    def refresh(self, members: Iterable[RingMember]) -> None:
        """Recompute the ring from the members in it; bump the epoch on change."""
        cfg = self._config
        ring = compute_ring(cfg.pool_id, list(members), cfg.shard_columns, cfg.weighting)
        if self.ring is not None and ring.hash == self.ring.hash:
            return
        self.ring = ring
        self._set_epoch(self.max_seen + 1)
        self._emit(RingChanged(self.ring))

    def check_converged(self) -> None:
        """Emit ``RingConverged`` when every ring member reports our (epoch, hash)."""
        ring = self.ring
        if ring is None:
            return
        key = (ring.epoch, ring.hash)
        self.converged = all(self.report_of(s.node_id) == key for s in ring.members)
        if self.converged and key != self._converged_key:
            self._converged_key = key
            self._emit(RingConverged(ring))
