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


@dataclass(frozen=True)
class Advert:
    """What a presence beacon says about this node besides its certificate."""

    name: str
    host: str
    port: int
    memory_bytes: int
    cores: int
    ring_hash: bytes = b""


@dataclass(frozen=True)
class Membership:
    """This node's verified place in the pool."""

    anchor: TrustAnchor
    cert_der: bytes
    info: MemberCertInfo
