"""Who is calling: the pool member named by the TLS client certificate.

uvicorn does not put the TLS session in the ASGI scope, so ``PeerCertH11Protocol``
(uvicorn's h11 protocol, selected with ``Config(http=...)``) copies the verified peer
certificate of each connection into that connection's ``scope["state"]`` under
``PEER_CERT`` (the server context uses CERT_OPTIONAL: anonymous clients may connect,
for ``/healthz`` and ``/v1/join``). ``require_member`` is the FastAPI dependency of
every member endpoint: no certificate -> 401, a certificate of no served pool, or a
revoked one -> 403.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass

from fastapi import HTTPException, Request
from uvicorn.protocols.http.h11_impl import H11Protocol

from reconciler.certs.errors import CertificateError
from reconciler.certs.member import MemberCertInfo
from reconciler.controlplane import limits
from reconciler.controlplane.state import AppState
from reconciler.drivers.service_tls import ServedPool, identify_client

PEER_CERT = "meshnet_peer_cert"


class PeerCertH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, exposing the peer certificate (DER) in scope state, and
    closing a connection from an address that already has
    ``limits.CONNECTIONS_PER_ADDRESS`` open on this server."""

    _address = ""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        per_address = _open_per_address(self.server_state)
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        if per_address[address] >= limits.CONNECTIONS_PER_ADDRESS:
            transport.close()
            return
        per_address[address] += 1
        self._address = address
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        self.app_state = {**self.app_state, PEER_CERT: der}

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._address:
            return  # refused in connection_made: uvicorn never saw it
        per_address = _open_per_address(self.server_state)
        per_address[self._address] -= 1
        if per_address[self._address] <= 0:
            del per_address[self._address]
        super().connection_lost(exc)


def _open_per_address(server_state: object) -> Counter[str]:
    counts: Counter[str] | None = getattr(server_state, "meshnet_per_address", None)
    if counts is None:
        counts = Counter()
        setattr(server_state, "meshnet_per_address", counts)  # noqa: B010
    return counts


@dataclass(frozen=True)
class Caller:
    """An authenticated member and the pool it belongs to."""

    pool: ServedPool
    cert: MemberCertInfo


def peer_cert(request: Request) -> bytes | None:
    der = request.scope.get("state", {}).get(PEER_CERT)
    return der if isinstance(der, bytes) and der else None


def require_member(request: Request) -> Caller:
    """The calling member; HTTPException 401/403 otherwise."""
    der = peer_cert(request)
    if der is None:
        raise HTTPException(401, "a pool client certificate is required (mutual TLS)")
    state: AppState = request.app.state.meshnet
    try:
        pool, info = identify_client(der, state.pools, state.revoked(), time.time())
    except CertificateError as err:
        raise HTTPException(403, f"client certificate refused: {err.reason}") from err
    return Caller(pool, info)
