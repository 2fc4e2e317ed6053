"""Who may use the OpenAI-compatible API (and the dashboard): ``require_client``.

A FastAPI dependency that accepts either

- a pool member: the verified TLS client certificate of a served pool (mutual TLS, on
  the control plane; see auth.py), or
- an API key: ``Authorization: Bearer mesh_...`` made with ``meshctl apikey create``
  (only its SHA-256 is stored; a deleted key is refused at its next request).

On the control plane, API keys are taken only from this device (loopback) unless it was
started with ``--api-lan``; members are taken from anywhere (mutual TLS).

No credential -> 401, a bad or revoked one -> 401 (key) or 403 (certificate), in
OpenAI's error body (apierrors.py). Its result names the client (for the fair job
queue) and the pool its requests run on, when the credential fixes one.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass

from fastapi import Request

from reconciler.apikeys import verify_key
from reconciler.certs.errors import CertificateError
from reconciler.controlplane.apierrors import ApiError
from reconciler.controlplane.auth import peer_cert
from reconciler.controlplane.state import AppState
from reconciler.drivers.service_tls import identify_client


@dataclass(frozen=True)
class ApiClient:
    """An authenticated API client."""

    client_id: str  # "apikey:NAME" or "member:NAME"
    pool: str | None  # the pool its requests run on, when the credential fixes it


def _state(request: Request) -> AppState:
    state: AppState = request.app.state.meshnet
    return state


def _loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def require_client(request: Request) -> ApiClient:
    """The calling client; ApiError 401/403 otherwise (async: no thread hop; the
    checks are a signature verification or one indexed SQLite read)."""
    state = _state(request)
    der = peer_cert(request)
    if der is not None:
        try:
            pool, info = identify_client(der, state.pools, state.revoked(), time.time())
        except CertificateError as err:
            raise ApiError(
                403, f"client certificate refused: {err.reason}", code="forbidden"
            ) from err
        return ApiClient(f"member:{info.node_id}", pool.name)
    token = bearer_token(request)
    if token is None:
        raise ApiError(
            401,
            "an API key is required: Authorization: Bearer KEY (meshctl apikey create NAME)",
            code="invalid_api_key",
        )
    if not state.api_keys_from_lan and not _loopback(request):
        raise ApiError(403, "API keys are accepted from this device only (start the control "
                            "plane with --api-lan to accept them from the LAN)", code="forbidden")  # fmt: skip
    key = verify_key(state.store(), token)
    if key is None:
        raise ApiError(401, "invalid or revoked API key", code="invalid_api_key")
    return ApiClient(f"apikey:{key.name}", key.pool)
