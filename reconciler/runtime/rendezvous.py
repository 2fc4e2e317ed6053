"""Rendezvous where multicast does not work: a member registers its peer-link
addresses at its pool's control plane (mutual TLS with its member certificate) and
seeds gossip with the members it gets back; the admin's agent publishes where it
listens for the control plane to hand out, and seeds gossip with the registrations.
(The relay's rendezvous is in relay/rendezvous.py and relay/client.py.)"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any

import httpx

from reconciler.drivers.netif import Interface, rendezvous_address
from reconciler.drivers.tls import TlsFiles, client_context
from reconciler.observed import RENDEZVOUS_TTL_SECONDS
from reconciler.relay.messages import PeerEntry, Register

log = logging.getLogger("meshnet.rendezvous")


class _QuietRegistrations(logging.Filter):
    """httpx logs every request at INFO: not the registration repeated every 5 s."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "/v1/rendezvous" not in record.getMessage()


logging.getLogger("httpx").addFilter(_QuietRegistrations())

REGISTER_SECONDS = 5.0
TIMEOUT = 5.0
RESEED_SECONDS = 5.0
NODE_ID = re.compile(r"node-[0-9a-f]{16}")
PeersHandler = Callable[[tuple[PeerEntry, ...]], None]


def entry_from_json(item: Any) -> PeerEntry | None:
    """One peer of a rendezvous answer or table; None if malformed."""
    try:
        addresses = tuple(str(a) for a in item["addresses"][:8])
        return PeerEntry(
            str(item["nodeId"])[:64], str(item.get("name", ""))[:64], addresses,
            int(item.get("memoryBytes", 0)), int(item.get("cores", 0)),
        )  # fmt: skip
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def entries_from_json(items: Any, now: float | None = None) -> tuple[PeerEntry, ...]:
    """The well-formed (and, with ``now``, fresh) entries of a list or a table."""
    if isinstance(items, dict):
        items = [v for v in items.values() if now is None or _fresh(v, now)]
    if not isinstance(items, list):
        return ()
    return tuple(e for e in (entry_from_json(i) for i in items) if e is not None)


def _fresh(item: Any, now: float) -> bool:
    try:
        return now - float(item.get("seen", 0)) < RENDEZVOUS_TTL_SECONDS
    except (TypeError, ValueError, AttributeError):
        return False


def self_entry(node_id: str, registration: Register, port: int) -> dict[str, Any]:
    """What the admin's agent publishes for the control plane to hand out."""
    return {"nodeId": node_id, "name": registration.name, "port": port,
            "addresses": list(registration.addresses), "memoryBytes": registration.memory_bytes,
            "cores": registration.cores}  # fmt: skip


class Seeds:
    """Which members a rendezvous handed us are worth seeding gossip with, and where to
    dial them: well-formed node IDs, not us, not heard by beacon (that path works),
    not revoked, each at most once per RESEED_SECONDS."""

    def __init__(self, self_id: str) -> None:
        self.self_id = self_id
        self.met: set[str] = set()  # members we met only through a rendezvous
        self._seeded: dict[str, float] = {}

    def pick(
        self,
        entries: Sequence[PeerEntry],
        by_beacon: Collection[str],
        blocked: Callable[[str], bool],
        interfaces: Sequence[Interface],
        now: float,
    ) -> list[tuple[PeerEntry, str]]:
        picked = []
        for entry in entries:
            node = entry.node_id
            if not NODE_ID.fullmatch(node) or node == self.self_id or not entry.addresses:
                continue
            if node in by_beacon or blocked(node):
                continue
            if now - self._seeded.get(node, now - RESEED_SECONDS) < RESEED_SECONDS:
                continue
            self._seeded[node] = now
            self.met.add(node)
            picked.append((entry, rendezvous_address(entry.addresses, interfaces)))
        return picked


class ControlPlaneRendezvous:
    """A member's registration at one control plane, refreshed every REGISTER_SECONDS."""

    def __init__(
        self, address: str, pool_id: str, files: TlsFiles, registration: Register,
        on_peers: PeersHandler,
    ) -> None:  # fmt: skip
        self.address, self.pool_id = address, pool_id
        self.registration, self.on_peers = registration, on_peers
        self._ctx = client_context(files)
        self.last_error = ""
        self.peers_heard = 0
        self.last_success: float | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="rendezvous-cp")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def status(self) -> dict[str, Any]:
        return {"address": self.address, "lastError": self.last_error,
                "peersHeard": self.peers_heard, "lastSuccess": self.last_success}  # fmt: skip

    async def _run(self) -> None:
        base = self.address if self.address.startswith("https://") else f"https://{self.address}"
        body = {"name": self.registration.name, "addresses": list(self.registration.addresses),
                "memoryBytes": self.registration.memory_bytes, "cores": self.registration.cores}  # fmt: skip
        async with httpx.AsyncClient(verify=self._ctx, timeout=TIMEOUT) as http:
            while True:
                await self._register_once(http, f"{base}/v1/rendezvous", body)
                await asyncio.sleep(REGISTER_SECONDS)

    async def _register_once(self, http: httpx.AsyncClient, url: str, body: Any) -> None:
        try:
            response = await http.post(url, json=body, extensions={"sni_hostname": self.pool_id})
            if response.status_code != 200:
                self.last_error = f"{response.status_code} {response.text[:200]}"
                return
            entries = entries_from_json(response.json().get("peers"))
        except (httpx.HTTPError, ValueError, AttributeError) as err:
            self.last_error = f"{type(err).__name__}: {err}"
            log.debug("rendezvous at %s: %s", self.address, self.last_error)
            return
        if self.last_success is None:
            log.info("rendezvous at %s: %d member(s) handed out", self.address, len(entries))
        self.last_error, self.peers_heard, self.last_success = "", len(entries), time.time()
        self.on_peers(entries)
