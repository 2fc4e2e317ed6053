"""The member table: applies alive/suspect/dead/leave/revoke inputs through the state
table of ``states.py``, runs Lifeguard suspicion timers and refutes suspicion of self.

Every accepted change is re-broadcast through the ``BroadcastQueue`` and reported
as an event; ``changed`` is set whenever the ring may have changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from reconciler.gossip.broadcasts import BroadcastQueue
from reconciler.gossip.config import GossipConfig
from reconciler.gossip.events import Event, MemberJoined, MemberRevoked, MemberStateChanged
from reconciler.gossip.messages import Alive, Dead, Leave, NodeMeta, Suspect
from reconciler.gossip.ring import RingMember
from reconciler.gossip.states import IN_RING, Input, MemberState, display_status, next_state
from reconciler.gossip.suspicion import Suspicion, min_suspicion_timeout


@dataclass(slots=True)
class Member:
    """One entry of the member table (mutable, owned by ``Membership``)."""

    node_id: str
    meta: NodeMeta
    state: MemberState
    incarnation: int
    last_seen: float | None = None
    revoked: bool = False


@dataclass(frozen=True, slots=True)
class MemberInfo:
    """One row of the peers listing."""

    node_id: str
    name: str
    address: str
    state: MemberState
    status: str
    incarnation: int
    last_seen: float | None
    meta: NodeMeta


def member_info(m: Member) -> MemberInfo:
    return MemberInfo(
        node_id=m.node_id,
        name=m.meta.name,
        address=m.meta.address,
        state=m.state,
        status=display_status(m.state),
        incarnation=m.incarnation,
        last_seen=m.last_seen,
        meta=m.meta,
    )


class Membership:
    """Member table of one node, including the node itself."""

    def __init__(
        self,
        self_id: str,
        self_meta: NodeMeta,
        config: GossipConfig,
        queue: BroadcastQueue,
        emit: Callable[[Event], None],
        now: float,
    ) -> None:
        self.self_id = self_id
        self._config = config
        self._queue = queue
        self._emit = emit
        self.members: dict[str, Member] = {
            self_id: Member(self_id, self_meta, MemberState.ALIVE, 0, now)
        }
        self.revoked: set[str] = set()
        self._suspicions: dict[str, Suspicion] = {}
        self.changed = True
        self.leaving = False
        self.refuted = False
        """Set by a refutation; the machine clears it per message (one refutation each)."""

    @property
    def local(self) -> Member:
        return self.members[self.self_id]

    def in_ring(self) -> list[Member]:
        return [m for m in self.members.values() if m.state in IN_RING and not m.revoked]

    def others(self, states: Iterable[MemberState] = IN_RING) -> list[str]:
        wanted = frozenset(states)
        return [
            m.node_id
            for m in self.members.values()
            if m.node_id != self.self_id and m.state in wanted and not m.revoked
        ]

    def ring_members(self) -> list[RingMember]:
        return [
            RingMember(m.node_id, m.meta.name, m.meta.address, m.meta.memory_bytes)
            for m in self.in_ring()
        ]

    def _apply(self, m: Member, inp: Input, msg_inc: int | None = None) -> MemberState | None:
        new = next_state(m.state, inp, m.incarnation, msg_inc)
        if new is None:
            return None
        if msg_inc is not None:
            m.incarnation = max(m.incarnation, msg_inc)
        if new is not m.state:
            old, m.state = m.state, new
            self.changed = True
            if new is not MemberState.SUSPECT:
                self._suspicions.pop(m.node_id, None)
            self._emit(MemberStateChanged(m.node_id, old, new, m.incarnation))
        return new

    def refute(self, incarnation: int) -> None:
        """Someone suspects us (or holds a newer entry about us): outbid it."""
        if self.refuted:
            return
        self.refuted = True
        local = self.local
        local.incarnation = max(local.incarnation, incarnation) + 1
        self._queue.push(Alive(self.self_id, local.incarnation, local.meta))

    def on_alive(self, b: Alive) -> None:
        if b.node_id == self.self_id:
            if b.incarnation > self.local.incarnation and not self.leaving:
                self.refute(b.incarnation)
            return
        if b.node_id in self.revoked:
            return
        m = self.members.get(b.node_id)
        if m is None:
            self.members[b.node_id] = Member(b.node_id, b.meta, MemberState.ALIVE, b.incarnation)
            self.changed = True
            self._emit(MemberJoined(b.node_id, b.meta))
        elif self._apply(m, Input.ALIVE_MSG, b.incarnation) is None:
            return
        elif m.meta != b.meta:
            m.meta = b.meta
            self.changed = True
        self._queue.push(b)

    def on_suspect(self, b: Suspect, now: float) -> None:
        if b.node_id == self.self_id:
            if b.incarnation >= self.local.incarnation and not self.leaving:
                self.refute(b.incarnation)
            return
        m = self.members.get(b.node_id)
        if m is None:
            return
        was, held = m.state, m.incarnation
        if self._apply(m, Input.SUSPECT_MSG, b.incarnation) is None:
            return
        if self._suspect(m, was, b.sender, now) or m.incarnation > held:
            self._queue.push(Suspect(b.node_id, m.incarnation, b.sender))

    def suspect_local(self, node_id: str, now: float) -> None:
        """Our probe of ``node_id`` failed."""
        m = self.members.get(node_id)
        if m is None:
            return
        was = m.state
        if self._apply(m, Input.PROBE_TIMEOUT) is None and was is not MemberState.SUSPECT:
            return
        if self._suspect(m, was, self.self_id, now):
            self._queue.push(Suspect(node_id, m.incarnation, self.self_id))

    def _suspect(self, m: Member, was: MemberState, by: str, now: float) -> bool:
        """Start or confirm a suspicion; True if it is news worth re-broadcasting."""
        existing = self._suspicions.get(m.node_id)
        if was is MemberState.SUSPECT and existing is not None:
            return existing.confirm(by)
        cfg = self._config
        n = len(self.in_ring())
        low = min_suspicion_timeout(cfg.suspicion_mult, n, cfg.probe_interval)
        expected = cfg.suspicion_mult - 2
        if n - 2 < expected:
            expected = 0
        high = low * cfg.suspicion_max_timeout_mult
        self._suspicions[m.node_id] = Suspicion(now, low, high, expected, by)
        return True

    def on_dead(self, b: Dead) -> None:
        if b.node_id == self.self_id:
            if b.incarnation >= self.local.incarnation and not self.leaving:
                self.refute(b.incarnation)
            return
        m = self.members.get(b.node_id)
        if m is not None and self._apply(m, Input.DEAD_MSG, b.incarnation) is not None:
            self._queue.push(b)

    def on_leave(self, b: Leave) -> None:
        if b.node_id == self.self_id:
            if b.incarnation >= self.local.incarnation and not self.leaving:
                self.refute(b.incarnation)
            return
        m = self.members.get(b.node_id)
        if m is not None and self._apply(m, Input.LEAVE_MSG, b.incarnation) is not None:
            self._queue.push(b)

    def leave(self) -> None:
        """Graceful leave of the local node."""
        local = self.local
        self.leaving = True
        self._apply(local, Input.LEAVE_MSG, local.incarnation)
        self._queue.push(Leave(self.self_id, local.incarnation))

    def revoke(self, node_id: str) -> bool:
        """Mark ``node_id`` revoked for good; True if this is news."""
        if node_id in self.revoked:
            return False
        self.revoked.add(node_id)
        m = self.members.get(node_id)
        if m is not None and node_id != self.self_id:
            self._apply(m, Input.REVOKED)
            m.revoked = True
            self.changed = True
        self._emit(MemberRevoked(node_id))
        return True

    def next_suspicion_deadline(self) -> float | None:
        return min((s.deadline for s in self._suspicions.values()), default=None)

    def expire_suspicions(self, now: float) -> None:
        for node_id, s in list(self._suspicions.items()):
            if now >= s.deadline:
                m = self.members[node_id]
                self._apply(m, Input.SUSPICION_TIMEOUT)
                self._queue.push(Dead(node_id, m.incarnation, self.self_id))
