"""``POST /v1/join``: a certificate for a token holder, by the beacons' admission rules.

The request names the pool, the joiner's Ed25519 public key and device name, a join
token ID with its HMAC proof (``reconciler.certs.tokens.make_join_proof``), a nonce
and a timestamp. It is also signed by the joiner's key (proof of possession)::

    signature = Ed25519(joiner key, b"meshnet-http-join-v1\\x00" || pool_id || 0x00
                        || public_key || nonce || timestamp (u64 ms BE) || device_name)

The admin decides with ``AdminDesk`` (reconciler/certs/desk.py) over the tokens,
approvals and revocations of the store; a token use is spent by one atomic UPDATE
(``store_admin.charge_token``), shared with the agent. Requests are rate limited per
client address and per key, and refusals are counted, not stored as Members.
Errors: 400 (stale timestamp, bad signature), 403 (denied, with the reason), 404
(not a pool this control plane administers), 429 (rate limited: retry later).
"""

from __future__ import annotations

import base64
import logging
import time

from fastapi import HTTPException
from pydantic import BaseModel, ConfigDict, Field

from manifests import Pool
from reconciler.admission_records import record_join
from reconciler.beacon.handlers import join_requested
from reconciler.certs.admission import JoinClaim
from reconciler.certs.desk import AdminDesk, Answer
from reconciler.certs.identity import node_id_for, verify_signature
from reconciler.certs.joinlimits import RATE_LIMITED
from reconciler.certs.tokens import signed_message
from reconciler.controlplane.state import AppState
from reconciler.pools import load_root, read_pool_info
from reconciler.store_admin import approvals, charge_token, tokens
from reconciler.textsafe import printable

log = logging.getLogger("meshnet.control-plane")

MAX_SKEW = 300.0
HEX64 = r"^[0-9a-f]{64}$"


class JoinRequest(BaseModel):
    """A join request over HTTP."""

    model_config = ConfigDict(extra="forbid")

    pool_id: str = Field(alias="poolId", pattern=r"^pool-[0-9a-f]{16}$")
    public_key: str = Field(alias="publicKey", pattern=HEX64, description="hex, 32 bytes")
    device_name: str = Field(alias="deviceName", min_length=1, max_length=64)
    token_id: str = Field(alias="tokenId", pattern=r"^[a-z0-9]{6}$")
    proof: str = Field(pattern=HEX64, description="hex HMAC-SHA256 join proof")
    nonce: str = Field(pattern=r"^([0-9a-f]{2}){16,32}$", description="hex, 16-32 bytes")
    timestamp: float = Field(ge=0, le=1e11, description="seconds since the epoch")
    root_fingerprint: str = Field(default="", alias="rootFingerprint", max_length=80)
    signature: str = Field(pattern=r"^[0-9a-f]{128}$", description="hex Ed25519 signature")


class JoinResponse(BaseModel):
    """The signed member certificate and the pool root (DER, base64)."""

    node_id: str = Field(alias="nodeId")
    certificate: str
    root_certificate: str = Field(alias="rootCertificate")


def join(
    state: AppState, body: JoinRequest, now: float | None = None, source: str = "http"
) -> JoinResponse:
    """Decide an HTTP join request from ``source`` (the client's address)."""
    now = time.time() if now is None else now
    pubkey, nonce = bytes.fromhex(body.public_key), bytes.fromhex(body.nonce)
    if abs(now - body.timestamp) > MAX_SKEW:
        raise HTTPException(400, f"timestamp is more than {MAX_SKEW:g} s from the admin's clock")
    message = signed_message(body.pool_id, pubkey, nonce, body.timestamp, body.device_name)
    if not verify_signature(pubkey, message, bytes.fromhex(body.signature)):
        raise HTTPException(400, "signature does not verify with publicKey")
    pool = state.pool_by_id(body.pool_id)
    if pool is None or not (pool.files.ca.parent / "root.key").exists():
        raise HTTPException(404, f"this control plane does not admit members to {body.pool_id}")
    claim = JoinClaim(
        body.pool_id, pubkey, node_id_for(pubkey), printable(body.device_name), nonce,
        body.timestamp,
        body.root_fingerprint, body.token_id, bytes.fromhex(body.proof),
    )  # fmt: skip
    with state.join_lock:
        desk = _desk(state, pool.name, body.pool_id)
        answer = desk.answer(claim, (source, 0), _revoked(state, pool.name), now)
        _record(state, pool.name, desk, claim, answer, source)
        if answer.status != "approved":
            code = 429 if answer.reason == RATE_LIMITED else 403
            raise HTTPException(code, f"join {answer.status}: {answer.reason}")
    log.info("admitted %s (%s) to %s over HTTP", claim.node_id, claim.device_name, pool.name)
    state.store().record_event(
        "Pool",
        pool.name,
        "Normal",
        "MemberJoined",
        f"{claim.node_id} ({claim.device_name}) over HTTP",
    )
    return JoinResponse(
        nodeId=claim.node_id,
        certificate=base64.b64encode(answer.cert_der).decode(),
        rootCertificate=base64.b64encode(pool.anchor.cert_der).decode(),
    )


def _record(
    state: AppState, name: str, desk: AdminDesk, claim: JoinClaim, answer: Answer, source: str
) -> None:
    """Mirror the decision into the store as the beacon path does."""
    info = read_pool_info(state.home, name)
    if info is None:
        return
    event = join_requested(claim, answer, (source, 0))
    record_join(state.store(), info, desk, event)


def _desk(state: AppState, name: str, pool_id: str) -> AdminDesk:
    """The pool's desk, its tokens, approvals and admission mode refreshed from the store."""
    desk = state.desks.get(pool_id)
    if desk is None:
        desk = state.desks[pool_id] = AdminDesk(load_root(state.home, name))
    store = state.store()
    desk.charge = lambda token_id, now: charge_token(store, token_id, now)
    desk.tokens = {t.record.token_id: t.record for t in tokens(store, name)}
    desk.approvals = dict(approvals(store, name))  # type: ignore[arg-type]
    obj = store.get("Pool", name)
    if isinstance(obj, Pool):
        desk.mode = obj.spec.admission
    return desk


def _revoked(state: AppState, name: str) -> frozenset[str]:
    pool = next(p for p in state.pools if p.name == name)
    return state.revoked().get(pool.anchor.pool_id, frozenset())
