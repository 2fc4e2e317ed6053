"""The joiner's side: build join requests, retry with capped exponential backoff, and
check the admin's answer.

The joiner pins the root fingerprint it was given (``meshctl join --root sha256:...``)
and accepts a response only when the root certificate it carries has that key. With
no pinned fingerprint (approve mode) it trusts the first root whose key derives the
pool ID it asked for (the pool ID is 64 bits of the root key's hash) — documented
trust-on-first-use. The issued certificate must chain to that root and certify the
joiner's own key.

A member renews the same way before its certificate runs out, presenting its current
certificate instead of a token (``current_cert``).

``status`` always says why the joiner waits: ``no admin heard``, ``pending approval``
or the admin's refusal (``token rejected: ...``). Requests keep being retried with
backoff until approved, since an admin may yet appear, approve, or fix its tokens.
"""

from __future__ import annotations

import random
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

from reconciler.backoff import BackoffPolicy
from reconciler.beacon.messages import JoinRequest, JoinResponse
from reconciler.certs.errors import CertificateError
from reconciler.certs.identity import NodeIdentity
from reconciler.certs.member import MemberCertInfo, verify_member_certificate
from reconciler.certs.root import TrustAnchor
from reconciler.certs.tokens import make_join_proof

JoinState = Literal["waiting", "pending", "denied", "joined"]


@dataclass(frozen=True)
class JoinStatus:
    """Where a join stands and why it waits."""

    state: JoinState
    reason: str
    attempts: int
    next_attempt_at: float | None


class JoinClient:
    """One join attempt series: the same nonce, new seq/timestamp/proof per retry."""

    def __init__(
        self,
        identity: NodeIdentity,
        pool_id: str,
        device_name: str,
        nonce: bytes,
        token: str | None = None,
        pinned_root_fingerprint: str | None = None,
        backoff: tuple[float, float] = (1.0, 30.0),
        current_cert: bytes = b"",
    ) -> None:
        self.identity = identity
        self.pool_id = pool_id
        self.device_name = device_name
        self.nonce = nonce
        self.token = token
        self.pinned = pinned_root_fingerprint
        self.current_cert = current_cert
        self.backoff = BackoffPolicy(*backoff)
        self.attempts = 0
        self.next_attempt_at: float | None = None
        self.state: JoinState = "waiting"
        self.reason = "no admin heard"

    @property
    def status(self) -> JoinStatus:
        return JoinStatus(self.state, self.reason, self.attempts, self.next_attempt_at)

    def request(self, timestamp_ms: int, now: float, rng: random.Random) -> JoinRequest:
        """The next request; schedules the retry after it (±10% jitter)."""
        self.attempts += 1
        delay = self.backoff.delay(self.attempts)
        self.next_attempt_at = now + delay * rng.uniform(0.9, 1.1)
        token_id, proof = "", b""
        if self.token:
            token_id, proof = make_join_proof(
                self.token, self.pool_id, self.identity.public_key, self.nonce, timestamp_ms / 1000
            )
        return JoinRequest(
            joiner_pubkey=self.identity.public_key,
            node_id=self.identity.node_id,
            device_name=self.device_name,
            nonce=self.nonce,
            root_fingerprint=self.pinned or "",
            token_id=token_id,
            proof=proof,
            current_cert_der=self.current_cert,
        )

    def anchor_for(self, response: JoinResponse) -> TrustAnchor:
        """The root the response claims, checked against the pin; CertificateError if not."""
        return TrustAnchor.from_cert_der(response.root_cert_der, self.pinned, self.pool_id)

    def accept(
        self, response: JoinResponse, anchor: TrustAnchor, now: float, revoked: Collection[str]
    ) -> MemberCertInfo | None:
        """Record a verified response; the certificate info when approved.

        Raises CertificateError when an 'approved' certificate is not valid for us.
        """
        if response.status != "approved":
            self.state = "pending" if response.status == "pending" else "denied"
            self.reason = response.reason or response.status
            return None
        info = verify_member_certificate(response.cert_der, anchor, now, revoked)
        if info.public_key != self.identity.public_key:
            raise CertificateError("wrong_key", "the certificate is for another key")
        self.state, self.reason, self.next_attempt_at = "joined", "joined", None
        return info
