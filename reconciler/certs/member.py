"""Member certificates: X.509, Ed25519, signed by the pool root.

Subject: ``CN=<node_id>, O=<pool_id>, OU=<role>, pseudonym=<device name>``; a DNS
subjectAltName equal to the node ID; extended key usage serverAuth + clientAuth, so
the same certificate authenticates both ends of a TLS 1.3 peer link. TLS verifies the
chain; the driver then calls ``verify_member_certificate`` (revocation, pool, node ID)
or ``node_id_from_peer_cert`` on ``SSLSocket.getpeercert(binary_form=True)`` instead
of hostname checking.

Two fingerprints name a member: ``info.fingerprint`` (of its public key, the node's
identity) and ``info.cert_fingerprint`` (sha256 of the certificate DER). A revocation
list may name either; revoking the key fingerprint also stops re-certification.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID

from reconciler.certs import x509util
from reconciler.certs.errors import CertificateError
from reconciler.certs.identity import PUBKEY_LEN, fingerprint, node_id_for
from reconciler.certs.root import PoolRoot, TrustAnchor

Role = Literal["admin", "member"]
ROLES: tuple[Role, ...] = ("admin", "member")
MEMBER_TTL_SECONDS = 30 * 86400.0
MAX_DEVICE_NAME_BYTES = 64  # keeps a beacon carrying two certificates under 1200 bytes
RENEW_FRACTION = 1.0 / 3.0  # renew when less than a third of the lifetime is left


@dataclass(frozen=True)
class MemberCertInfo:
    """What a verified member certificate says."""

    node_id: str
    device_name: str
    role: Role
    pool_id: str
    not_before: float
    not_after: float
    fingerprint: str  # of the raw public key
    cert_fingerprint: str  # of the certificate DER
    public_key: bytes


def cert_fingerprint(der: bytes) -> str:
    """``sha256:<hex>`` of a certificate's DER bytes."""
    return "sha256:" + hashlib.sha256(der).hexdigest()


def sign_member_certificate(
    root: PoolRoot,
    member_pubkey_raw: bytes,
    device_name: str,
    role: Role,
    now: float,
    ttl: float = MEMBER_TTL_SECONDS,
    revoked: Collection[str] = (),
) -> bytes:
    """DER of a member certificate for ``member_pubkey_raw``; the node ID is derived.

    Refuses (CertificateError 'revoked') to certify a key whose fingerprint is revoked.
    """
    if len(member_pubkey_raw) != PUBKEY_LEN:
        raise CertificateError("wrong_key_type", "member key must be 32 raw bytes")
    if role not in ROLES:
        raise CertificateError("bad_role", f"role must be one of {ROLES}")
    if not device_name or len(device_name.encode()) > MAX_DEVICE_NAME_BYTES:
        raise CertificateError("bad_name", f"device name must be 1..{MAX_DEVICE_NAME_BYTES} bytes")
    if fingerprint(member_pubkey_raw) in revoked:
        raise CertificateError("revoked", "this key is revoked and cannot be certified")
    node_id = node_id_for(member_pubkey_raw)
    member_key = ed25519.Ed25519PublicKey.from_public_bytes(member_pubkey_raw)
    start = x509util.to_datetime(now - x509util.BACKDATE_SECONDS)
    root_key = root.identity.crypto_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(_subject(node_id, root.pool_id, role, device_name))
        .issuer_name(root.anchor.cert.subject)
        .public_key(member_key)
        .serial_number(x509util.serial_for(member_pubkey_raw, str(int(now)).encode()))
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(seconds=ttl))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509util.key_usage(ca=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(node_id)]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
            critical=False,
        )
    )
    return builder.sign(root_key, None).public_bytes(serialization.Encoding.DER)


def verify_member_certificate(
    der: bytes, anchor: TrustAnchor, now: float, revoked: Collection[str] = ()
) -> MemberCertInfo:
    """Check that ``der`` is a valid, unrevoked member certificate issued by ``anchor``.

    Raises CertificateError with reason ``malformed``, ``untrusted`` (not signed by
    the root), ``other_pool``, ``expired``, ``not_yet_valid``, ``revoked``,
    ``node_id_mismatch``, ``bad_role`` or ``wrong_key_type``.
    """
    cert = x509util.load_der(der)
    try:
        with x509util.malformed_as_error():
            cert.verify_directly_issued_by(anchor.cert)
    except (InvalidSignature, CertificateError) as exc:
        raise CertificateError("untrusted", "certificate is not signed by the pool root") from exc
    info = read_member_certificate(der)
    if info.pool_id != anchor.pool_id:
        raise CertificateError("other_pool", f"certificate is for pool {info.pool_id}")
    if info.fingerprint in revoked or info.cert_fingerprint in revoked:
        raise CertificateError("revoked", f"certificate of {info.node_id} is revoked")
    x509util.check_validity(cert, now)
    return info


def read_member_certificate(der: bytes) -> MemberCertInfo:
    """Parse a member certificate without checking who signed it or when."""
    with x509util.malformed_as_error():
        return _read(der)


def _read(der: bytes) -> MemberCertInfo:
    cert = x509util.load_der(der)
    pub = x509util.raw_public_key(cert)
    node_id = x509util.name_attr(cert.subject, x509util.NODE_OID)
    if node_id != node_id_for(pub):
        raise CertificateError("node_id_mismatch", "node ID is not derived from the key")
    role = x509util.name_attr(cert.subject, x509util.ROLE_OID)
    if role not in ROLES:
        raise CertificateError("bad_role", f"unknown role {role!r}")
    return MemberCertInfo(
        node_id=node_id,
        device_name=x509util.name_attr(cert.subject, x509util.DEVICE_OID),
        role="admin" if role == "admin" else "member",
        pool_id=x509util.name_attr(cert.subject, x509util.POOL_OID),
        not_before=cert.not_valid_before_utc.timestamp(),
        not_after=cert.not_valid_after_utc.timestamp(),
        fingerprint=fingerprint(pub),
        cert_fingerprint=cert_fingerprint(der),
        public_key=pub,
    )


def node_id_from_peer_cert(der: bytes) -> str:
    """The node ID of a TLS peer's certificate (checked against its key)."""
    return read_member_certificate(der).node_id


def needs_renewal(info: MemberCertInfo, now: float, fraction: float = RENEW_FRACTION) -> bool:
    """True once less than ``fraction`` of the certificate's lifetime remains."""
    lifetime = info.not_after - info.not_before
    return info.not_after - now < lifetime * fraction


def _subject(node_id: str, pool_id: str, role: str, device_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(x509util.NODE_OID, node_id),
            x509.NameAttribute(x509util.POOL_OID, pool_id),
            x509.NameAttribute(x509util.ROLE_OID, role),
            x509.NameAttribute(x509util.DEVICE_OID, device_name),
        ]
    )
