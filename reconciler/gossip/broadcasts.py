"""Transmit-limited queue of piggybacked broadcasts (memberlist's TransmitLimitedQueue).

A new broadcast about the same subject (member entry, ring report of a node, a
revocation entry) replaces the queued one. Broadcasts sent the fewest times go
first, newest first among equals; each is dropped after ``limit`` transmissions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from reconciler.gossip.messages import (
    Alive,
    Broadcast,
    Dead,
    Leave,
    Revoke,
    RingReport,
    Suspect,
    encode_broadcast,
)


def subject(b: Broadcast) -> tuple[str, str | bytes]:
    """What a broadcast is about; a newer one on the same subject invalidates it."""
    match b:
        case Alive(node_id) | Suspect(node_id) | Dead(node_id) | Leave(node_id):
            return ("member", node_id)
        case RingReport(node_id):
            return ("ring", node_id)
        case Revoke(entry):
            return ("revoke", entry)
    raise TypeError(b)


def retransmit_limit(mult: int, n: int) -> int:
    """How many times one broadcast is sent: ``mult * ceil(log10(n + 1))``."""
    return mult * max(1, math.ceil(math.log10(n + 1)))


@dataclass(slots=True)
class _Entry:
    broadcast: Broadcast
    size: int
    serial: int
    transmits: int = 0


class BroadcastQueue:
    """Broadcasts waiting to be piggybacked."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str | bytes], _Entry] = {}
        self._serial = 0

    def __len__(self) -> int:
        return len(self._entries)

    def push(self, b: Broadcast) -> None:
        self._serial += 1
        self._entries[subject(b)] = _Entry(b, len(encode_broadcast(b)), self._serial)

    def take(self, byte_budget: int, limit: int) -> tuple[Broadcast, ...]:
        """Broadcasts for one message, within ``byte_budget`` encoded bytes."""
        chosen: list[Broadcast] = []
        used = 0
        for entry in sorted(self._entries.values(), key=lambda e: (e.transmits, -e.serial)):
            if used + entry.size > byte_budget:
                continue
            used += entry.size
            chosen.append(entry.broadcast)
            entry.transmits += 1
            if entry.transmits >= limit:
                del self._entries[subject(entry.broadcast)]
        return tuple(chosen)
