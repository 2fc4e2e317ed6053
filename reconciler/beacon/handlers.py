"""Checks and event builders used by the beacon machine (pure helpers).

Each ``*_signer`` function names who must have signed a message — and refuses,
with ``Drop``, a message whose signer we cannot trust — so that ``open_verified``
can check the signature the same way for every type.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

from reconciler.beacon.events import Addr, DropReason, JoinRequested, PeerSeen
from reconciler.beacon.joining import JoinClient
from reconciler.beacon.messages import (
    Common,
    JoinRequest,
    JoinResponse,
    Message,
    Presence,
    decode_body,
)
from reconciler.beacon.wire import open_envelope
from reconciler.certs.admission import JoinClaim
from reconciler.certs.desk import Answer
from reconciler.certs.errors import CertificateError
from reconciler.certs.identity import NodeIdentity, fingerprint, node_id_for, verify_signature
from reconciler.certs.member import MemberCertInfo, verify_member_certificate
from reconciler.certs.root import TrustAnchor
from reconciler.textsafe import printable


class Drop(Exception):
    """Internal: this datagram is dropped for ``reason`` (never escapes the machine)."""

    def __init__(self, reason: DropReason, detail: str = "") -> None:
        super().__init__(detail or reason.value)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Signer:
    """The key a message must be signed with, and what vouches for it."""

    public_key: bytes
    sender: str  # replay-tracking key: the signer's fingerprint
    info: MemberCertInfo | None = None  # presence: the verified member certificate
    anchor: TrustAnchor | None = None  # join response: the verified pool root


@dataclass(frozen=True)
class Verified:
    """A datagram whose framing, pool and signature have been checked."""

    common: Common
    message: Message
    signer: Signer


def open_verified(data: bytes, pool_id: str, signer_for: Callable[[Message], Signer]) -> Verified:
    """Parse, check the pool, find the signer and check the signature (Drop/DecodeError)."""
    envelope = open_envelope(data)
    common, msg = decode_body(envelope.msg_type, envelope.body)
    if common.pool_id != pool_id:
        raise Drop(DropReason.OTHER_POOL, common.pool_id)
    signer = signer_for(msg)
    if not verify_signature(signer.public_key, envelope.signed_bytes, envelope.signature):
        raise Drop(DropReason.BAD_SIGNATURE)
    return Verified(common, msg, signer)


def _cert_drop(exc: CertificateError) -> Drop:
    reason = DropReason.REVOKED if exc.reason == "revoked" else DropReason.UNTRUSTED_CERT
    return Drop(reason, exc.reason)


CertVerifier = Callable[[bytes, TrustAnchor, float, Collection[str]], MemberCertInfo]


def presence_signer(
    msg: Presence,
    anchor: TrustAnchor,
    own: NodeIdentity,
    revoked: Collection[str],
    now: float,
    verify: CertVerifier = verify_member_certificate,
) -> Signer:
    """The member whose certificate the presence carries (chain and revocation checked)."""
    try:
        info = verify(msg.cert_der, anchor, now, revoked)
    except CertificateError as exc:
        raise _cert_drop(exc) from exc
    if info.public_key == own.public_key:
        raise Drop(DropReason.SELF)
    if msg.node_id != info.node_id:
        raise Drop(DropReason.UNTRUSTED_CERT, "node ID differs from the certificate")
    return Signer(info.public_key, info.fingerprint, info=info)


def join_request_signer(msg: JoinRequest, own: NodeIdentity) -> Signer:
    """The joiner's own key (a join request is self-signed)."""
    if msg.node_id != node_id_for(msg.joiner_pubkey):
        raise Drop(DropReason.GARBAGE, "node ID not derived from the joiner key")
    if msg.joiner_pubkey == own.public_key:
        raise Drop(DropReason.SELF)
    return Signer(msg.joiner_pubkey, fingerprint(msg.joiner_pubkey))


def join_response_signer(msg: JoinResponse, joiner: JoinClient, own: NodeIdentity) -> Signer:
    """The pool root named in the response, if it is the one we pinned."""
    if msg.target_node_id != own.node_id or msg.nonce != joiner.nonce:
        raise Drop(DropReason.NOT_FOR_US)
    try:
        anchor = joiner.anchor_for(msg)
    except CertificateError as exc:
        raise Drop(DropReason.UNTRUSTED_CERT, exc.reason) from exc
    return Signer(anchor.public_key, anchor.fingerprint, anchor=anchor)


def accept_answer(
    joiner: JoinClient,
    msg: JoinResponse,
    anchor: TrustAnchor,
    revoked: Collection[str],
    now: float,
) -> MemberCertInfo | None:
    """Let the join client take a verified answer; Drop if its certificate is bad."""
    try:
        return joiner.accept(msg, anchor, now, revoked)
    except CertificateError as exc:
        raise _cert_drop(exc) from exc


def peer_seen(
    msg: Presence, common: Common, info: MemberCertInfo, addr: Addr, now: float
) -> PeerSeen:
    return PeerSeen(
        node_id=msg.node_id,
        name=printable(msg.name),
        host=msg.host,
        port=msg.port,
        memory_bytes=msg.memory_bytes,
        cores=msg.cores,
        ring_hash=msg.ring_hash,
        cert=info,
        seq=common.seq,
        timestamp=common.timestamp,
        clock_skew=common.timestamp - now,
        source=addr,
    )


def join_requested(claim: JoinClaim, answer: Answer, source: Addr) -> JoinRequested:
    return JoinRequested(
        node_id=claim.node_id,
        device_name=claim.device_name,
        fingerprint=fingerprint(claim.joiner_pubkey),
        source=source,
        status=answer.status,
        reason=answer.reason,
        token_id=answer.token_id,
        cert_der=answer.cert_der,
    )


def claim_from(msg: JoinRequest, common: Common) -> JoinClaim:
    """The admission view of a verified join request."""
    return JoinClaim(
        pool_id=common.pool_id,
        joiner_pubkey=msg.joiner_pubkey,
        node_id=msg.node_id,
        device_name=printable(msg.device_name),
        nonce=msg.nonce,
        timestamp=common.timestamp,
        root_fingerprint=msg.root_fingerprint,
        token_id=msg.token_id,
        proof=msg.proof,
        renewal_cert=msg.current_cert_der,
    )
