"""Caps on a TLS server's connections; the TLS handshake's deadline.

A server's TLS handshake must finish within ``HANDSHAKE_TIMEOUT`` (asyncio's
``ssl_handshake_timeout``); then ``ConnectionGate.enter(address)`` caps connections in
total and per remote address, and, once the peer's certificate is read,
``claim(identity)`` caps them per identity (node ID). Refusals are counted in
``refused`` by reason.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

HANDSHAKE_TIMEOUT = 5.0


@dataclass
class ConnectionGate:
    """Concurrent connection caps of one server."""

    total: int = 256
    per_address: int = 32
    per_identity: int = 4
    refused: Counter[str] = field(default_factory=Counter)
    _addresses: Counter[str] = field(default_factory=Counter)
    _identities: Counter[str] = field(default_factory=Counter)

    def enter(self, address: str) -> bool:
        """Admit a new connection from ``address``; False (and counted) if over a cap."""
        if sum(self._addresses.values()) >= self.total:
            self.refused["total"] += 1
            return False
        if self._addresses[address] >= self.per_address:
            self.refused["per_address"] += 1
            return False
        self._addresses[address] += 1
        return True

    def leave(self, address: str) -> None:
        self._addresses[address] -= 1
        if self._addresses[address] <= 0:
            del self._addresses[address]

    def claim(self, identity: str) -> bool:
        """Admit an authenticated connection of ``identity``; False if it has its cap."""
        if self._identities[identity] >= self.per_identity:
            self.refused["per_identity"] += 1
            return False
        self._identities[identity] += 1
        return True

    def release(self, identity: str) -> None:
        self._identities[identity] -= 1
        if self._identities[identity] <= 0:
            del self._identities[identity]

    @property
    def open(self) -> int:
        return sum(self._addresses.values())


def remote_address(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else "?"
