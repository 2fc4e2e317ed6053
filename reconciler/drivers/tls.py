"""TLS 1.3 contexts for peer links: mutual authentication by pool certificates.

Both ends present a member certificate issued by the pool root and accept only
certificates that chain to it; host names are not checked — the peer's node ID is read
from its certificate and compared with the one expected.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from reconciler.certs.member import cert_fingerprint, node_id_from_peer_cert


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of one member: its certificate, its key, and the pool root."""

    cert: Path
    key: Path
    ca: Path


def _context(purpose: int, files: TlsFiles) -> ssl.SSLContext:
    ctx = ssl.SSLContext(purpose)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_cert_chain(files.cert, files.key)
    ctx.load_verify_locations(cafile=str(files.ca))
    return ctx


def server_context(files: TlsFiles) -> ssl.SSLContext:
    return _context(ssl.PROTOCOL_TLS_SERVER, files)


def client_context(files: TlsFiles) -> ssl.SSLContext:
    return _context(ssl.PROTOCOL_TLS_CLIENT, files)


@dataclass(frozen=True)
class PeerIdentity:
    """Who is at the other end of an authenticated link."""

    node_id: str
    fingerprint: str


def peer_identity(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> PeerIdentity:
    """The peer's node ID and certificate fingerprint; ValueError if it has none."""
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    if not der:
        raise ValueError("peer presented no certificate")
    return PeerIdentity(node_id_from_peer_cert(der), cert_fingerprint(der))
