"""The only file I/O of the certificate layer: private files written atomically, 0600.

Keys are stored as PKCS8 PEM, certificates as PEM. Every write goes through
``reconciler.home.write_atomic``: a temporary file in the same directory (made 0600
before any byte is written), fsynced, then ``os.replace``d over the target, so a crash
never leaves a half-written key.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from reconciler.certs.identity import SEED_LEN, NodeIdentity
from reconciler.certs.x509util import der_to_pem
from reconciler.home import write_atomic

PRIVATE_MODE = 0o600


def write_private(path: Path, data: bytes) -> None:
    """Atomically write ``data`` to ``path`` with mode 0600."""
    write_atomic(path, data, PRIVATE_MODE)


def new_seed() -> bytes:
    """32 fresh random bytes for a new Ed25519 key."""
    return os.urandom(SEED_LEN)


def save_identity(path: Path, identity: NodeIdentity) -> None:
    write_private(path, identity.private_key_pem())


def load_identity(path: Path) -> NodeIdentity:
    return NodeIdentity.from_private_key_pem(path.read_bytes())


def load_or_create_identity(path: Path) -> NodeIdentity:
    """The node key at ``path``, made (from os.urandom) on first use."""
    if path.exists():
        return load_identity(path)
    identity = NodeIdentity(new_seed())
    save_identity(path, identity)
    return identity


def save_certificate(path: Path, der: bytes) -> None:
    """Store a certificate as PEM (0600)."""
    write_private(path, der_to_pem(der))


def load_certificate(path: Path) -> bytes:
    """A stored PEM certificate, returned as DER."""
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return cert.public_bytes(serialization.Encoding.DER)
