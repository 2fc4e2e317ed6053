"""Events the beacon machine reports to its driver, and the reasons for dropping input."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from reconciler.certs.member import MemberCertInfo

Addr = tuple[str, int]


class DropReason(StrEnum):
    """Why a datagram was dropped; each reason has a counter."""

    GARBAGE = "garbage"
    TRUNCATED = "truncated"
    TOO_LARGE = "too_large"
    BAD_VERSION = "bad_version"
    UNKNOWN_TYPE = "unknown_type"
    BAD_SIGNATURE = "bad_signature"
    OTHER_POOL = "other_pool"
    UNTRUSTED_CERT = "untrusted_cert"
    REVOKED = "revoked"
    REPLAY = "replay"
    STALE_SEQ = "stale_seq"
    REPLAY_TABLE_FULL = "replay_table_full"  # a new sender while every entry is live
    UNPADDED = "unpadded"  # a join request too short to deserve an answer
    RATE_LIMITED = "rate_limited"  # too many join requests from a source, or overall
    EXPIRED = "expired"  # timestamp too far in the past
    CLOCK_SKEW = "clock_skew"  # timestamp too far in the future
    NOT_FOR_US = "not_for_us"  # a join response for another node or attempt
    UNEXPECTED = "unexpected"  # e.g. a join request reaching a non-admin
    SELF = "self"  # our own beacon looped back


@dataclass(frozen=True)
class PeerSeen:
    """A verified presence beacon from a pool member."""

    node_id: str
    name: str
    host: str
    port: int
    memory_bytes: int
    cores: int
    ring_hash: bytes
    cert: MemberCertInfo
    seq: int
    timestamp: float
    clock_skew: float  # their timestamp minus our clock, seconds
    source: Addr


@dataclass(frozen=True)
class JoinRequested:
    """(Admin) a join request was decided; the driver persists tokens and members."""

    node_id: str
    device_name: str
    fingerprint: str
    source: Addr
    status: str  # approved | pending | denied
    reason: str
    token_id: str | None
    cert_der: bytes  # the issued certificate when approved, else b""


@dataclass(frozen=True)
class JoinAnswered:
    """(Joiner) the admin answered; on ``approved`` the machine is now a member."""

    status: str  # approved | pending | denied
    reason: str
    cert_der: bytes
    root_cert_der: bytes
    cert: MemberCertInfo | None


@dataclass(frozen=True)
class DatagramDropped:
    """Input that failed a check; never raised, only reported and counted."""

    reason: DropReason
    source: Addr
    detail: str = ""


Event = PeerSeen | JoinRequested | JoinAnswered | DatagramDropped
