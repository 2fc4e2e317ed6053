"""Relay protocol messages (client <-> relay), one dataclass per frame type.

Circuit IDs are u32 and local to one client connection. A client numbers the circuits
it opens with the high bit clear (0 .. 2**31-1); the relay numbers the circuits it
announces with INCOMING with the high bit set, so the two never collide (like the
odd/even stream IDs of HTTP/2).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

RELAY_CIRCUIT_BIT = 0x8000_0000
NO_CIRCUIT = 0xFFFF_FFFF


class FrameType(IntEnum):
    """The u8 type byte of a frame."""

    RESERVE = 1
    RESERVED = 2
    CONNECT = 3
    CONNECTED = 4
    INCOMING = 5
    DATA = 6
    CLOSE = 7
    ERROR = 8
    REGISTER = 9
    PEERS = 10


class ErrorCode(IntEnum):
    """Why the relay refused something (u16 on the wire)."""

    PROTOCOL = 1
    BAD_IDENTITY = 2
    TOO_MANY_RESERVATIONS = 3
    TOO_MANY_CIRCUITS = 4
    CIRCUIT_BYTES_EXCEEDED = 5
    CIRCUIT_DURATION_EXCEEDED = 6
    UNKNOWN_TARGET = 7
    QUEUE_FULL = 8
    UNKNOWN_CIRCUIT = 9
    DUPLICATE_CIRCUIT = 10
    FRAME_TOO_LARGE = 11


@dataclass(frozen=True)
class Reserve:
    """Client: keep me reachable under my node ID (must match my certificate)."""

    node_id: str


@dataclass(frozen=True)
class Reserved:
    """Relay: the reservation is held."""

    node_id: str


@dataclass(frozen=True)
class Connect:
    """Client: open circuit ``circuit_id`` to the member ``target``."""

    circuit_id: int
    target: str


@dataclass(frozen=True)
class Connected:
    """Relay: the circuit is open; DATA may flow."""

    circuit_id: int


@dataclass(frozen=True)
class Incoming:
    """Relay: ``source`` opened circuit ``circuit_id`` to you."""

    circuit_id: int
    source: str


@dataclass(frozen=True)
class Data:
    """Bytes on a circuit (opaque to the relay: inner TLS records)."""

    circuit_id: int
    payload: bytes


@dataclass(frozen=True)
class Close:
    """Either side: the circuit is closed."""

    circuit_id: int
    reason: str = ""


@dataclass(frozen=True)
class Error:
    """Relay: a refusal; when ``circuit_id`` names a circuit, that circuit is closed."""

    code: ErrorCode
    circuit_id: int = NO_CIRCUIT
    message: str = ""


@dataclass(frozen=True)
class PeerEntry:
    """A member as the rendezvous knows it: where it listens for peer links."""

    node_id: str
    name: str
    addresses: tuple[str, ...]  # host:port, one per network leg
    memory_bytes: int
    cores: int


@dataclass(frozen=True)
class Register:
    """Client: my peer-link addresses (rendezvous when multicast does not work); the
    relay answers with PEERS. Refreshed while the connection lasts."""

    name: str
    addresses: tuple[str, ...]
    memory_bytes: int
    cores: int


@dataclass(frozen=True)
class Peers:
    """Relay: the other registered members of your pool."""

    entries: tuple[PeerEntry, ...]


Message = (
    Reserve | Reserved | Connect | Connected | Incoming | Data | Close | Error | Register | Peers
)
