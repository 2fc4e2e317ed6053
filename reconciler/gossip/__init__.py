"""SWIM-style membership gossip and the ring, sans-IO.

``machine.GossipProtocol`` is the facade; ``ring.compute_ring`` the pure ring
function; ``states`` the member state table; ``messages`` the wire format.
"""

from reconciler.gossip.config import GossipConfig
from reconciler.gossip.events import (
    Event,
    MemberHinted,
    MemberJoined,
    MemberRevoked,
    MemberStateChanged,
    MessageDropped,
    RingChanged,
    RingConverged,
)
from reconciler.gossip.machine import GossipProtocol, MemberInfo, Verifier
from reconciler.gossip.messages import GossipDecodeError, NodeMeta
from reconciler.gossip.ring import Ring, RingMember, RingSlot, compute_ring
from reconciler.gossip.states import MemberState

__all__ = [
    "Event",
    "GossipConfig",
    "GossipDecodeError",
    "GossipProtocol",
    "MemberHinted",
    "MemberInfo",
    "MemberJoined",
    "MemberRevoked",
    "MemberState",
    "MemberStateChanged",
    "MessageDropped",
    "NodeMeta",
    "Ring",
    "RingChanged",
    "RingConverged",
    "RingMember",
    "RingSlot",
    "Verifier",
    "compute_ring",
]
