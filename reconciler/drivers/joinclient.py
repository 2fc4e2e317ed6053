"""Joining a pool over HTTP (the agent's fallback when no beacon answer arrives).

The joiner has no CA yet, only the pinned root fingerprint, so trust is built in
two steps, and the token proof is only ever sent to a verified server:

1. ``GET /v1/join/root?poolId=`` without server verification: the pool's public root
   certificate. It is accepted only if its key has the pinned fingerprint and it names
   the pool ID (``TrustAnchor.from_cert_der``); a forged answer fails here.
2. ``POST /v1/join`` over TLS that verifies the server certificate against that
   pinned root (so only the pool's control plane can see the request), with the pool
   ID as SNI. The answer's certificate is checked to be a valid member certificate of
   the pool for the joiner's own key.

Errors: ``HttpJoinError`` with the server's JSON error text (or the reason the server
or its answer was not trusted).
"""

from __future__ import annotations

import base64
import os
import ssl

import httpx

from reconciler.certs.errors import CertError
from reconciler.certs.identity import NodeIdentity
from reconciler.certs.member import verify_member_certificate
from reconciler.certs.root import TrustAnchor
from reconciler.certs.tokens import make_join_proof, signed_message

TIMEOUT = 10.0


class HttpJoinError(Exception):
    """The HTTP join failed; the message says why."""


def _base(address: str) -> str:
    return address if address.startswith("https://") else f"https://{address}"


def _error_text(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", response.text))
    except ValueError:
        return response.text[:200]


def fetch_root(address: str, pool_id: str, root_fingerprint: str) -> TrustAnchor:
    """Step 1: the pool root, accepted only if it matches the pinned fingerprint."""
    with httpx.Client(verify=False, timeout=TIMEOUT) as http:  # checked by the pin below
        response = http.get(f"{_base(address)}/v1/join/root", params={"poolId": pool_id})
    if response.status_code != 200:
        raise HttpJoinError(f"root of {pool_id}: {response.status_code} {_error_text(response)}")
    try:
        der = base64.b64decode(response.json()["rootCertificate"], validate=True)
        return TrustAnchor.from_cert_der(der, pinned_fingerprint=root_fingerprint, pool_id=pool_id)
    except (ValueError, KeyError, TypeError, CertError) as err:
        raise HttpJoinError(f"the control plane's root is not the pinned one: {err}") from err


def _pinned_context(anchor: TrustAnchor) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False  # member certificates name node IDs, not hosts
    ctx.load_verify_locations(cadata=anchor.cert_pem.decode())
    return ctx


def http_join(
    address: str,
    pool_id: str,
    root_fingerprint: str,
    identity: NodeIdentity,
    device_name: str,
    token: str,
    now: float,
) -> tuple[bytes, bytes]:
    """(member certificate DER, root certificate DER) from the control plane at
    ``address`` (``host:port`` or an https URL)."""
    anchor = fetch_root(address, pool_id, root_fingerprint)
    nonce = os.urandom(16)
    token_id, proof = make_join_proof(token, pool_id, identity.public_key, nonce, now)
    message = signed_message(pool_id, identity.public_key, nonce, now, device_name)
    body = {
        "poolId": pool_id, "publicKey": identity.public_key.hex(), "deviceName": device_name,
        "tokenId": token_id, "proof": proof.hex(), "nonce": nonce.hex(), "timestamp": now,
        "rootFingerprint": root_fingerprint, "signature": identity.sign(message).hex(),
    }  # fmt: skip
    try:
        with httpx.Client(verify=_pinned_context(anchor), timeout=TIMEOUT) as http:
            response = http.post(
                f"{_base(address)}/v1/join", json=body, extensions={"sni_hostname": pool_id}
            )
    except httpx.ConnectError as err:
        raise HttpJoinError(f"cannot reach a trusted control plane at {address}: {err}") from err
    if response.status_code != 200:
        raise HttpJoinError(f"join refused: {response.status_code} {_error_text(response)}")
    return _check_answer(response, anchor, identity, now), anchor.cert_der


def _check_answer(
    response: httpx.Response, anchor: TrustAnchor, identity: NodeIdentity, now: float
) -> bytes:
    try:
        cert = base64.b64decode(response.json()["certificate"], validate=True)
        info = verify_member_certificate(cert, anchor, now)
    except (ValueError, KeyError, TypeError, CertError) as err:
        raise HttpJoinError(f"the control plane answered an unusable certificate: {err}") from err
    if info.public_key != identity.public_key:
        raise HttpJoinError("the control plane certified another key")
    return cert
