"""Who may say what about whom: gossip claims bound to their subject.

The driver passes ``sender``, the node ID of the authenticated TLS peer. From that:

- ``Alive`` (and an ALIVE push-pull record) about X is taken only from X itself: X
  alone states its address, capacity and incarnation. Heard from anyone else it is a
  *hint*: news that X may exist or be back, checked by a push-pull with X directly
  (``contacts.py``). Hints are few, expire, and are never members or ring positions.
- ``Leave`` (and a LEFT record) about X is taken only from X itself.
- ``Suspect`` and ``Dead`` about X may come from anyone (that is SWIM), but they
  cannot raise X's incarnation: they apply at most at the incarnation we hold, so no
  one can push X's number out of reach of its own refutations.
- Claims about ourselves are refuted, at most once per received message and never
  above ``claims.MAX_SELF_JUMP``.
- The member table holds at most ``max_members`` entries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from reconciler.gossip.claims import MAX_SELF_JUMP, record_problem
from reconciler.gossip.membership import Membership
from reconciler.gossip.messages import Alive, Dead, Leave, MemberRecord, NodeMeta, Suspect
from reconciler.gossip.states import MemberState

MemberClaim = Alive | Suspect | Dead | Leave
Drop = Callable[[str, str], None]
Hint = Callable[[str, NodeMeta, int, str, float], None]
"""(node ID, claimed meta, claimed incarnation, sender, now)."""


class Attribution:
    """Routes member claims to the table according to who makes them."""

    def __init__(self, members: Membership, max_members: int, hint: Hint, drop: Drop) -> None:
        self.members = members
        self.max_members = max_members
        self._hint = hint
        self._drop = drop

    def claim(self, b: MemberClaim, sender: str, now: float) -> None:
        """One Alive/Suspect/Dead/Leave broadcast heard from ``sender``."""
        if b.node_id == self.members.self_id:
            return self._about_self(b, sender, now)
        match b:
            case Alive(node_id, inc, meta) if node_id != sender:
                self._hint(node_id, meta, inc, sender, now)
            case Alive():
                if self._room_for(b.node_id, sender):
                    self.members.on_alive(b)
            case Leave(node_id) if node_id != sender:
                self._drop(sender, "leave not sent by its subject")
            case Leave():
                self.members.on_leave(b)
            case Suspect(node_id, inc, by):
                self.members.on_suspect(Suspect(node_id, self._held(node_id, inc), by), now)
            case Dead(node_id, inc, by):
                self.members.on_dead(Dead(node_id, self._held(node_id, inc), by))

    def records(self, records: Iterable[MemberRecord], sender: str, now: float) -> None:
        """A push-pull state; a remote DEAD is taken as a suspicion (memberlist)."""
        for r in records:
            problem = record_problem(r)
            if problem is not None:
                self._drop(sender, problem)
                continue
            if r.state is MemberState.ALIVE:
                self.claim(Alive(r.node_id, r.incarnation, r.meta), sender, now)
            elif r.state is MemberState.LEFT:
                if r.node_id in (sender, self.members.self_id):
                    self.claim(Leave(r.node_id, r.incarnation), sender, now)
            else:
                self.claim(Suspect(r.node_id, r.incarnation, sender), sender, now)

    def _about_self(self, b: MemberClaim, sender: str, now: float) -> None:
        if b.incarnation > MAX_SELF_JUMP:
            return self._drop(sender, "implausible incarnation claimed for this node")
        match b:
            case Alive():
                self.members.on_alive(b)
            case Suspect():
                self.members.on_suspect(b, now)
            case Dead():
                self.members.on_dead(b)
            case Leave():
                self.members.on_leave(b)

    def _held(self, node_id: str, incarnation: int) -> int:
        m = self.members.members.get(node_id)
        return incarnation if m is None else min(incarnation, m.incarnation)

    def _room_for(self, node_id: str, sender: str) -> bool:
        table = self.members.members
        if node_id in table or len(table) < self.max_members:
            return True
        self._drop(sender, "member table full")
        return False
