"""Peers to reach that are not live members: seeds and hints.

- A *seed* is a node learnt out of band (a verified beacon): asked to join with a
  push-pull, and retried until it is a member.
- A *hint* is a node a third party says is alive (``attribution.py``): news to check,
  never a member. It gets an *introduction* (a push-pull request carrying only our
  own record: its answer, which carries its own record, is what makes it a member),
  asked again each probe interval in case that was lost, and forgotten after two
  push-pull intervals. At most ``max_hints`` are kept; a node that never answers
  costs a bounded number of small messages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from reconciler.gossip.config import GossipConfig
from reconciler.gossip.events import Event, MemberHinted, MessageDropped
from reconciler.gossip.membership import Membership
from reconciler.gossip.messages import Body, MemberRecord, NodeMeta, PushPull
from reconciler.gossip.states import MemberState

Send = Callable[[str, Body], None]


@dataclass(slots=True)
class HintEntry:
    meta: NodeMeta
    since: float  # first heard of: the hint expires some time after
    at: float  # last asked


class Hints:
    """Node IDs heard of from third parties, waiting to be checked directly."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.entries: dict[str, HintEntry] = {}

    def offer(self, node_id: str, meta: NodeMeta, now: float, every: float) -> bool | None:
        """True: contact ``node_id`` now; False: recently done; None: table full."""
        entry = self.entries.get(node_id)
        if entry is not None:
            if now - entry.at < every:
                return False
            entry.at = now
            return True
        if len(self.entries) >= self.limit:
            return None
        self.entries[node_id] = HintEntry(meta, now, now)
        return True

    def due(self, now: float, every: float) -> list[str]:
        """Hints not asked for ``every`` seconds (their question may have been lost)."""
        due = sorted(k for k, e in self.entries.items() if now - e.at >= every)
        for node_id in due:
            self.entries[node_id].at = now
        return due

    def expire(self, now: float, ttl: float) -> None:
        self.entries = {k: e for k, e in self.entries.items() if now - e.since < ttl}

    def discard(self, node_ids: Iterable[str]) -> None:
        for node_id in node_ids:
            self.entries.pop(node_id, None)


class Contacts:
    """The seeds and hints of one node."""

    def __init__(
        self, config: GossipConfig, members: Membership, send: Send, emit: Callable[[Event], None]
    ) -> None:
        self._config = config
        self._members = members
        self._send = send
        self._emit = emit
        self.seeds: dict[str, NodeMeta] = {}
        self.hints = Hints(config.max_hints)
        self.refused = False  # a hint was refused in the message being read (one report)

    def wanted(self, node_id: str) -> bool:
        return node_id in self.seeds or node_id in self.hints.entries

    def introduction(self) -> PushPull:
        """A push-pull request carrying only our own record: the answer is what we want."""
        local = self._members.local
        mine = MemberRecord(local.node_id, local.meta, local.state, local.incarnation)
        return PushPull(False, (mine,))

    def hint(self, node_id: str, meta: NodeMeta, incarnation: int, sender: str, now: float) -> None:
        """A third party says ``node_id`` is alive: if that is news, ask it directly."""
        if node_id in self._members.revoked or node_id in self.seeds:
            return
        held = self._members.members.get(node_id)
        if held is not None and (
            held.state is MemberState.ALIVE or incarnation <= held.incarnation
        ):
            return
        offer = self.hints.offer(node_id, meta, now, self._config.probe_interval)
        if offer is None:
            if not self.refused:  # one report per message, not one per ghost
                self.refused = True
                self._emit(MessageDropped(sender, "too many unconfirmed members"))
            return
        if offer:
            if held is None:
                self._emit(MemberHinted(node_id, meta))
            self._send(node_id, self.introduction())

    def tick(self, now: float) -> None:
        """Each probe interval: ask the hints again, forget the old ones."""
        for node_id in self.hints.due(now, self._config.probe_interval):
            self._send(node_id, self.introduction())
        self.hints.expire(now, 2 * self._config.push_pull_interval)

    def forget(self, node_ids: Iterable[str]) -> None:
        """Members now (or revoked): no longer contacts."""
        gone = set(node_ids)
        self.seeds = {k: v for k, v in self.seeds.items() if k not in gone}
        self.hints.discard(gone)
