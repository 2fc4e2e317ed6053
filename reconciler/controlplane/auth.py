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
from dataclasses import dataclass

from fastapi import HTTPException, Request
from uvicorn.protocols.http.h11_impl import H11Protocol

from reconciler.certs.errors import CertificateError
from reconciler.certs.member import MemberCertInfo
from reconciler.controlplane.state import AppState
from reconciler.relay.service_tls import ServedPool, identify_client

PEER_CERT = "meshnet_peer_cert"


class PeerCertH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, exposing the peer certificate (DER) in scope state."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        self.app_state = {**self.app_state, PEER_CERT: der}


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
