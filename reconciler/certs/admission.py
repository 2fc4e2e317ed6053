"""Who may join: a pure decision over a join request and the pool's admission state.

Admission modes (the Pool's ``admission``):

- ``token``: a valid join token is required.
- ``approve``: a request without a token waits as pending until the admin approves or
  denies it (by node ID or device name, like Kubernetes CSRs).
- ``auto``: anyone naming the pool ID and the root fingerprint is admitted.

A member renewing its certificate presents its current one: a valid, unrevoked
certificate for the same key admits in every mode (renewal before expiry), under the
device name of that certificate (names stay fixed across renewals).
A valid token admits in every mode (creating one is the admin's consent); a token
that is present but unknown, expired, used up or wrongly proved is refused in every
mode. A revoked key is refused before anything else.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Literal

from reconciler.certs.errors import CertificateError
from reconciler.certs.identity import fingerprint
from reconciler.certs.member import verify_member_certificate
from reconciler.certs.root import TrustAnchor
from reconciler.certs.tokens import TokenRecord

AdmissionMode = Literal["token", "approve", "auto"]
JoinStatusCode = Literal["approved", "pending", "denied"]
"""The answer to a join request, as beacons and the control plane carry it."""
ApprovalState = Literal["pending", "approved", "denied"]
ADMISSION_MODES: tuple[AdmissionMode, ...] = ("token", "approve", "auto")


@dataclass(frozen=True)
class JoinClaim:
    """The verified content of a join request (signature already checked by the caller)."""

    pool_id: str
    joiner_pubkey: bytes
    node_id: str
    device_name: str
    nonce: bytes
    timestamp: float
    root_fingerprint: str = ""  # the root fingerprint the joiner pinned, if any
    token_id: str = ""
    proof: bytes = b""
    renewal_cert: bytes = b""  # the member's current certificate, when renewing


@dataclass(frozen=True)
class Approve:
    """Issue a certificate; ``token_id`` names the token to charge one use, if any;
    ``device_name``, when set, is the name to certify (a renewal keeps its name)."""

    token_id: str | None = None
    device_name: str | None = None


@dataclass(frozen=True)
class Deny:
    """Refuse, saying why."""

    reason: str


@dataclass(frozen=True)
class Pending:
    """Wait for the admin, saying why."""

    reason: str


Decision = Approve | Deny | Pending


def decide_join(
    request: JoinClaim,
    mode: AdmissionMode,
    tokens: Mapping[str, TokenRecord],
    revoked: Collection[str],
    approvals: Mapping[str, ApprovalState],
    now: float,
    anchor: TrustAnchor,
) -> Decision:
    """Decide a join request. ``approvals`` maps node IDs to the admin's decision."""
    if request.pool_id != anchor.pool_id:
        return Deny("wrong pool")
    if fingerprint(request.joiner_pubkey) in revoked:
        return Deny("revoked")
    if request.renewal_cert:
        return _decide_renewal(request, revoked, now, anchor)
    if request.token_id:
        return _decide_token(request, tokens, now, anchor)
    if mode == "auto":
        if request.root_fingerprint == anchor.fingerprint:
            return Approve()
        return Deny("auto admission needs the pool's root fingerprint")
    if mode == "approve":
        state = approvals.get(request.node_id, "pending")
        if state == "approved":
            return Approve()
        if state == "denied":
            return Deny("denied by admin")
        return Pending("pending approval")
    return Deny("token required")


def _decide_renewal(
    request: JoinClaim, revoked: Collection[str], now: float, anchor: TrustAnchor
) -> Decision:
    try:
        info = verify_member_certificate(request.renewal_cert, anchor, now, revoked)
    except CertificateError as exc:
        return Deny(f"renewal refused: {exc.reason}")
    if info.public_key != request.joiner_pubkey:
        return Deny("renewal refused: certificate is for another key")
    return Approve(device_name=info.device_name)


def _decide_token(
    request: JoinClaim, tokens: Mapping[str, TokenRecord], now: float, anchor: TrustAnchor
) -> Decision:
    record = tokens.get(request.token_id)
    if record is None:
        return Deny("token rejected: unknown token")
    unusable = record.unusable_reason(now)
    if unusable is not None:
        return Deny(f"token rejected: {unusable}")
    if not record.check_proof(
        request.proof, anchor.pool_id, request.joiner_pubkey, request.nonce, request.timestamp
    ):
        return Deny("token rejected: bad proof")
    return Approve(token_id=request.token_id)
