"""Events reported by ``GossipProtocol.next_event()``."""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.gossip.messages import NodeMeta
from reconciler.gossip.ring import Ring
from reconciler.gossip.states import MemberState


@dataclass(frozen=True, slots=True)
class MemberJoined:
    """A member was learnt for the first time."""

    node_id: str
    meta: NodeMeta


@dataclass(frozen=True, slots=True)
class MemberHinted:
    """A third party named a node we do not know: the machine asks it directly.

    Not a member yet (it becomes one only when it answers for itself); ``meta`` is
    the third party's word, good only as an address to try."""

    node_id: str
    meta: NodeMeta


@dataclass(frozen=True, slots=True)
class MemberStateChanged:
    """A member moved between ALIVE, SUSPECT, DEAD and LEFT."""

    node_id: str
    old: MemberState
    new: MemberState
    incarnation: int


@dataclass(frozen=True, slots=True)
class MemberRevoked:
    """A member is revoked: the driver drops its link now and refuses it from now on."""

    node_id: str


@dataclass(frozen=True, slots=True)
class RingChanged:
    """The local ring (member set, names, addresses or ranges) changed."""

    ring: Ring


@dataclass(frozen=True, slots=True)
class RingConverged:
    """Every member in the ring reports the same epoch and hash as this node."""

    ring: Ring


@dataclass(frozen=True, slots=True)
class MessageDropped:
    """A received message (or part of it) was refused; never raised to the driver."""

    from_node_id: str
    reason: str


Event = (
    MemberJoined
    | MemberHinted
    | MemberStateChanged
    | MemberRevoked
    | RingChanged
    | RingConverged
    | MessageDropped
)
