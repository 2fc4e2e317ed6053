"""The admin's side of joining: admission state and certificate issuing (pure).

``AdminDesk`` holds what the admin agent decides with: the pool root, the admission
mode, the join tokens, the admin's approvals and the pending requests. The beacon
machine and the control plane's HTTP join feed it verified join claims; the agent
mirrors its state to the store (token usages, pending requests) from the
``JoinRequested`` events (``reconciler/admission_records.py``).

Retries are idempotent: a key that already holds a fresh certificate from this desk
gets the same certificate again, without charging a token use. A key counts as
revoked when its key fingerprint or the fingerprint of any certificate issued to it
is revoked.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from reconciler.certs.admission import (
    AdmissionMode,
    ApprovalState,
    Approve,
    Deny,
    JoinClaim,
    JoinStatusCode,
    decide_join,
)
from reconciler.certs.errors import CertificateError
from reconciler.certs.identity import fingerprint
from reconciler.certs.joinlimits import RATE_LIMITED, JoinLimiter
from reconciler.certs.member import (
    MEMBER_TTL_SECONDS,
    cert_fingerprint,
    needs_renewal,
    sign_member_certificate,
    verify_member_certificate,
)
from reconciler.certs.root import PoolRoot
from reconciler.certs.tokens import TokenRecord

Addr = tuple[str, int]  # where a request came from (host, port)


@dataclass(frozen=True)
class PendingJoin:
    """A request waiting for ``approve``/``deny``; keeps what is needed to answer it."""

    claim: JoinClaim
    source: Addr
    first_seen: float
    last_seen: float


@dataclass(frozen=True)
class Answer:
    """What the admin answers to one join request."""

    status: JoinStatusCode
    reason: str
    cert_der: bytes = b""
    token_id: str | None = None


@dataclass
class AdminDesk:
    """Admission state of the pool's admin agent."""

    root: PoolRoot
    mode: AdmissionMode = "token"
    tokens: dict[str, TokenRecord] = field(default_factory=dict)
    approvals: dict[str, ApprovalState] = field(default_factory=dict)
    pending: dict[str, PendingJoin] = field(default_factory=dict)
    cert_ttl: float = MEMBER_TTL_SECONDS
    max_pending: int = 256  # bounds memory against a flood of self-made keys
    limiter: JoinLimiter | None = field(default_factory=JoinLimiter)
    charge: Callable[[str, float], bool] | None = None  # spend one token use; False if none
    _issued: dict[str, bytes] = field(default_factory=dict)  # key fp -> latest cert
    _cert_fps: dict[str, set[str]] = field(default_factory=dict)  # key fp -> cert fps

    def add_token(self, record: TokenRecord) -> None:
        self.tokens[record.token_id] = record

    def answer(
        self, claim: JoinClaim, source: Addr, revoked: Collection[str], now: float
    ) -> Answer:
        """Decide one verified join claim (and issue a certificate when admitted)."""
        key_fp = fingerprint(claim.joiner_pubkey)
        if not self._allowed(claim, source, key_fp, now):
            return Answer("denied", RATE_LIMITED)
        revoked = set(revoked)
        if self._is_revoked(key_fp, revoked):
            revoked.add(key_fp)
        else:
            cached = self._fresh_cert(key_fp, revoked, now)
            if cached is not None:
                return Answer("approved", "already a member", cached)
        decision = decide_join(
            claim, self.mode, self.tokens, revoked, self.approvals, now, self.root.anchor
        )
        if isinstance(decision, Approve):
            return self._issue(claim, decision, revoked, now)
        if isinstance(decision, Deny):
            return Answer("denied", decision.reason)
        old = self.pending.get(claim.node_id)
        first = old.first_seen if old else now
        self.pending[claim.node_id] = PendingJoin(claim, source, first, now)
        if len(self.pending) > self.max_pending:
            stalest = min(self.pending.values(), key=lambda p: p.last_seen)
            del self.pending[stalest.claim.node_id]
        return Answer("pending", decision.reason)

    def _allowed(self, claim: JoinClaim, source: Addr, key_fp: str, now: float) -> bool:
        if self.limiter is None or self.approvals.get(claim.node_id) == "approved":
            return True
        return self.limiter.allow(str(source[0]), key_fp, now)

    def approve(self, name: str) -> PendingJoin:
        """Approve a pending request by node ID or device name; LookupError if unknown."""
        return self._set(name, "approved")

    def deny(self, name: str) -> PendingJoin:
        """Deny a pending request by node ID or device name; LookupError if unknown."""
        found = self._set(name, "denied")
        del self.pending[found.claim.node_id]
        return found

    def _set(self, name: str, state: ApprovalState) -> PendingJoin:
        matches = [
            p for p in self.pending.values() if name in (p.claim.node_id, p.claim.device_name)
        ]
        if len(matches) != 1:
            problem = "no" if not matches else "more than one"
            raise LookupError(f"{problem} pending join request named {name!r}")
        self.approvals[matches[0].claim.node_id] = state
        return matches[0]

    def _issue(
        self, claim: JoinClaim, decision: Approve, revoked: Collection[str], now: float
    ) -> Answer:
        token_id = decision.token_id
        try:
            cert = sign_member_certificate(
                self.root,
                claim.joiner_pubkey,
                decision.device_name or claim.device_name,
                "member",
                now,
                self.cert_ttl,
                revoked,
            )
        except CertificateError as exc:
            return Answer("denied", f"cannot certify: {exc}")
        if token_id is not None:
            if self.charge is not None and not self.charge(token_id, now):
                return Answer("denied", "token rejected: token used up")
            self.tokens[token_id] = self.tokens[token_id].used()
        key_fp = fingerprint(claim.joiner_pubkey)
        self._issued[key_fp] = cert
        self._cert_fps.setdefault(key_fp, set()).add(cert_fingerprint(cert))
        self.pending.pop(claim.node_id, None)
        return Answer("approved", "admitted", cert, token_id)

    def _is_revoked(self, key_fp: str, revoked: Collection[str]) -> bool:
        return key_fp in revoked or any(fp in revoked for fp in self._cert_fps.get(key_fp, ()))

    def _fresh_cert(self, key_fp: str, revoked: Collection[str], now: float) -> bytes | None:
        cert = self._issued.get(key_fp)
        if cert is None:
            return None
        try:
            info = verify_member_certificate(cert, self.root.anchor, now, revoked)
        except CertificateError:
            return None
        return None if needs_renewal(info, now) else cert
