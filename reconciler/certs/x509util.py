"""Small helpers shared by the X.509 modules: clock conversion, names, PEM."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import NameOID

from reconciler.certs.errors import CertificateError

# Certificates start this long before `now`, so a peer whose clock is a little behind
# still accepts them.
BACKDATE_SECONDS = 300.0


def to_datetime(now: float) -> dt.datetime:
    """Epoch seconds to an aware UTC datetime truncated to whole seconds (X.509 precision)."""
    return dt.datetime.fromtimestamp(int(now), tz=dt.UTC)


def serial_for(*parts: bytes) -> int:
    """A deterministic positive 127-bit serial number from the certificate's inputs."""
    digest = hashlib.sha256(b"meshnet-serial-v1\x00" + b"\x00".join(parts)).digest()
    return int.from_bytes(digest[:16], "big") >> 1 or 1


def name_attr(name: x509.Name, oid: x509.ObjectIdentifier) -> str:
    """The single string value of ``oid`` in ``name``; CertificateError if absent or repeated."""
    values = name.get_attributes_for_oid(oid)
    if len(values) != 1 or not isinstance(values[0].value, str):
        raise CertificateError("malformed", f"certificate name lacks a single {oid._name}")
    return values[0].value


def raw_public_key(cert: x509.Certificate) -> bytes:
    """The raw 32-byte Ed25519 public key certified by ``cert``."""
    key = cert.public_key()
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise CertificateError("wrong_key_type", "certificate key is not Ed25519")
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def load_der(der: bytes) -> x509.Certificate:
    """Parse DER; any parse failure becomes CertificateError('malformed')."""
    try:
        return x509.load_der_x509_certificate(der)
    except (ValueError, TypeError, x509.InvalidVersion) as exc:
        raise CertificateError("malformed", f"not a DER certificate: {exc}") from exc


@contextmanager
def malformed_as_error() -> Iterator[None]:
    """Turn the ValueError/TypeError that lazy X.509 parsing can raise into CertificateError."""
    try:
        yield
    except (ValueError, TypeError, x509.InvalidVersion, UnsupportedAlgorithm) as exc:
        raise CertificateError("malformed", f"malformed certificate: {exc}") from exc


def der_to_pem(der: bytes) -> bytes:
    """PEM text of a DER certificate (for ``SSLContext.load_verify_locations``)."""
    return load_der(der).public_bytes(serialization.Encoding.PEM)


def check_validity(cert: x509.Certificate, now: float) -> None:
    """CertificateError('not_yet_valid' | 'expired') when ``now`` is outside the validity."""
    if now < cert.not_valid_before_utc.timestamp():
        raise CertificateError("not_yet_valid", "certificate is not valid yet")
    if now > cert.not_valid_after_utc.timestamp():
        raise CertificateError("expired", "certificate has expired")


POOL_OID = NameOID.ORGANIZATION_NAME
NODE_OID = NameOID.COMMON_NAME
ROLE_OID = NameOID.ORGANIZATIONAL_UNIT_NAME
DEVICE_OID = NameOID.PSEUDONYM


def key_usage(ca: bool) -> x509.KeyUsage:
    """digitalSignature, plus keyCertSign and cRLSign for a CA."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )
