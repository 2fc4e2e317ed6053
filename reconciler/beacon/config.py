"""Settings and state records of the beacon machine."""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.beacon.events import Addr
from reconciler.certs.member import MemberCertInfo
from reconciler.certs.root import TrustAnchor


@dataclass(frozen=True)
class BeaconConfig:
    """Static settings. ``destinations``: the multicast group and the static peers."""

    pool_id: str
    destinations: tuple[Addr, ...]
    interval: float = 5.0
    max_skew: float = 120.0
    join_backoff: tuple[float, float] = (1.0, 30.0)
    replay_window: int = 64
    replay_senders: int = 4096  # per table: members (and root) apart from joiners


@dataclass(frozen=True)
class Advert:
    """What a presence beacon says about this node besides its certificate."""

    name: str
    host: str
    port: int
    memory_bytes: int
    cores: int
    ring_hash: bytes = b""

    def __post_init__(self) -> None:
        """Bound what the beacon carries, so a presence always fits 1200 bytes."""
        if len(self.name.encode()) > 64 or len(self.host.encode()) > 64:
            raise ValueError("advertised name and host are limited to 64 bytes")
        if len(self.ring_hash) > 64:
            raise ValueError("ring hash is limited to 64 bytes")


@dataclass(frozen=True)
class Membership:
    """This node's verified place in the pool."""

    anchor: TrustAnchor
    cert_der: bytes
    info: MemberCertInfo
