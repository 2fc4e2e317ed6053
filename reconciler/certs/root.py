"""The pool root: a self-signed Ed25519 CA, and the trust anchor members pin.

- ``pool_id_for(root_pub)`` = ``"pool-" + sha256(root_pub).hexdigest()[:16]``.
- The root fingerprint is ``fingerprint(root_pub)`` (see identity.py); joiners pin it.
- Root certificate subject: ``CN=meshnet pool root, O=<pool_id>``. The pool's
  display name is not in the certificate: every member certificate repeats the
  issuer name, and a join response carrying both must fit one 1200-byte beacon. CA with
  path length 0 (it signs member certificates only).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from reconciler.certs import x509util
from reconciler.certs.errors import CertificateError
from reconciler.certs.identity import NodeIdentity, fingerprint

ROOT_TTL_SECONDS = 10 * 365 * 86400.0
ROOT_COMMON_NAME = "meshnet pool root"


def pool_id_for(root_pubkey_raw: bytes) -> str:
    """The pool ID named by a root public key: ``pool-`` + 16 hex digits."""
    return "pool-" + hashlib.sha256(root_pubkey_raw).hexdigest()[:16]


@dataclass(frozen=True)
class TrustAnchor:
    """A verified root certificate: what a member trusts (public parts only)."""

    cert_der: bytes
    pool_id: str
    fingerprint: str
    public_key: bytes
    cert: x509.Certificate = field(repr=False, compare=False)

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @classmethod
    def from_cert_der(
        cls, der: bytes, pinned_fingerprint: str | None = None, pool_id: str | None = None
    ) -> TrustAnchor:
        """Check a root certificate (self-signed CA, pinned key, pool ID) and wrap it.

        Raises CertificateError with reason ``malformed``, ``not_ca``,
        ``bad_signature``, ``fingerprint_mismatch`` or ``pool_mismatch``.
        """
        with x509util.malformed_as_error():
            return cls._check(der, pinned_fingerprint, pool_id)

    @classmethod
    def _check(cls, der: bytes, pinned_fingerprint: str | None, pool_id: str | None) -> TrustAnchor:
        cert = x509util.load_der(der)
        pub = x509util.raw_public_key(cert)
        _check_is_ca(cert)
        try:
            cert.verify_directly_issued_by(cert)
        except InvalidSignature as exc:
            raise CertificateError("bad_signature", "root is not validly self-signed") from exc
        fp = fingerprint(pub)
        if pinned_fingerprint is not None and fp != pinned_fingerprint:
            raise CertificateError("fingerprint_mismatch", "root key is not the pinned one")
        derived = pool_id_for(pub)
        if x509util.name_attr(cert.subject, x509util.POOL_OID) != derived:
            raise CertificateError("pool_mismatch", "root names a pool not derived from its key")
        if pool_id is not None and pool_id != derived:
            raise CertificateError("pool_mismatch", f"root is for {derived}, not {pool_id}")
        return cls(cert_der=der, pool_id=derived, fingerprint=fp, public_key=pub, cert=cert)


def _check_is_ca(cert: x509.Certificate) -> None:
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound as exc:
        raise CertificateError("not_ca", "root certificate lacks basicConstraints") from exc
    if not bc.ca:
        raise CertificateError("not_ca", "root certificate is not a CA")


@dataclass(frozen=True)
class PoolRoot:
    """The pool's CA: its key (kept by the admin device) and its self-signed certificate."""

    identity: NodeIdentity = field(repr=False)
    name: str
    anchor: TrustAnchor

    @property
    def pool_id(self) -> str:
        return self.anchor.pool_id

    @property
    def fingerprint(self) -> str:
        return self.anchor.fingerprint

    @property
    def cert_der(self) -> bytes:
        return self.anchor.cert_der

    @classmethod
    def load(cls, seed: bytes, cert_der: bytes, pool_name: str) -> PoolRoot:
        """Rebuild from a stored seed and certificate; the two must belong together."""
        identity = NodeIdentity(seed)
        anchor = TrustAnchor.from_cert_der(cert_der, pinned_fingerprint=identity.fingerprint)
        return cls(identity=identity, name=pool_name, anchor=anchor)


def create_pool_root(
    seed: bytes, pool_name: str, now: float, ttl: float = ROOT_TTL_SECONDS
) -> PoolRoot:
    """A new pool root CA from a 32-byte seed; deterministic given its inputs."""
    identity = NodeIdentity(seed)
    pub = identity.public_key
    pool_id = pool_id_for(pub)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, ROOT_COMMON_NAME),
            x509.NameAttribute(x509util.POOL_OID, pool_id),
        ]
    )
    key = identity.crypto_key()
    start = x509util.to_datetime(now - x509util.BACKDATE_SECONDS)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509util.serial_for(pub, str(int(now)).encode()))
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(seconds=ttl))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509util.key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    der = builder.sign(key, None).public_bytes(serialization.Encoding.DER)
    return PoolRoot(identity=identity, name=pool_name, anchor=TrustAnchor.from_cert_der(der))
