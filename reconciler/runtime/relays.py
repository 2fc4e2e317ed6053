"""A pool runtime's relays: a reservation on each, and circuits when a direct peer
link cannot be made (PeerLinks falls back to them and goes back to direct)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from manifests.fields import split_host_port
from reconciler.drivers.peerlinks import PeerLinks, Streams
from reconciler.drivers.tls import PeerIdentity, TlsFiles, client_context, server_context
from reconciler.home import Home
from reconciler.relay.client import RelayClient
from reconciler.relay.messages import PeerEntry, Register


class PoolRelays:
    """The relays one pool uses on this device."""

    def __init__(self, home: Home, relays: list[str], node_id: str, pool_id: str) -> None:
        self.home, self.node_id, self.pool_id = home, node_id, pool_id
        self.configured = relays
        self.clients: list[RelayClient] = []
        self._links: PeerLinks | None = None
        self._registration: Register | None = None
        self.on_peers: Callable[[tuple[PeerEntry, ...]], None] | None = None

    def addresses(self) -> list[tuple[str, int]]:
        """The Pool's relays, and a relay running on this device (it wrote relay.port)."""
        addresses = [split_host_port(r) for r in self.configured]
        try:
            local = int((self.home.root / "relay.port").read_text().strip())
            addresses.append(("127.0.0.1", local))
        except (OSError, ValueError):
            pass
        return list(dict.fromkeys(addresses))

    def start(
        self, files: TlsFiles, links: PeerLinks, allowed: Callable[[PeerIdentity], bool]
    ) -> None:
        self._links = links
        client_ctx, server_ctx = client_context(files), server_context(files)
        for host, port in self.addresses():
            client = RelayClient(
                host, port, self.node_id, self.pool_id, client_ctx, server_ctx,
                on_circuit=self._on_circuit, allowed=allowed,
            )  # fmt: skip
            client.start()
            if self._registration is not None:
                client.register(self._registration)
            client.on_peers = self._on_peers
            self.clients.append(client)
        if self.clients:
            links.relay_dial = self.dial

    def register(self, registration: Register) -> None:
        """Register our peer-link addresses on every relay (its rendezvous)."""
        self._registration = registration
        for client in self.clients:
            client.register(registration)

    def _on_peers(self, entries: tuple[PeerEntry, ...]) -> None:
        if self.on_peers is not None:
            self.on_peers(entries)

    async def _on_circuit(
        self, node_id: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        assert self._links is not None
        await self._links.accept_relayed(node_id, reader, writer)

    async def dial(self, node_id: str) -> Streams:
        """A circuit to a peer through the first relay that can make one."""
        errors = []
        for client in self.clients:
            if not client.reserved:
                errors.append(f"{client.host}:{client.port}: no reservation ({client.last_error})")
                continue
            try:
                return await client.open_circuit(node_id)
            except (OSError, TimeoutError, ConnectionError) as err:
                errors.append(f"{client.host}:{client.port}: {err}")
        raise ConnectionError(f"no relay could reach {node_id}: " + "; ".join(errors))

    def status(self) -> list[dict[str, object]]:
        return [{"address": f"{c.host}:{c.port}", "reserved": c.reserved, "lastError": c.last_error,
                 "registered": c.registration is not None, "peersHeard": c.peers_heard}
                for c in self.clients]  # fmt: skip

    async def close(self) -> None:
        for client in self.clients:
            await client.close()
