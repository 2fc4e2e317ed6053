"""A pool's material on disk, under MESHNET_HOME/pools/<name>/.

root.key   the pool root CA key (admin device only; mode 0600, PKCS8 PEM)
ca.crt     the pool root CA certificate (PEM)
pool.json  {"name", "poolId", "rootFingerprint", "role"}
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from reconciler.certs.identity import NodeIdentity
from reconciler.certs.root import PoolRoot, TrustAnchor, create_pool_root
from reconciler.home import Home, write_atomic

Role = Literal["admin", "member"]


@dataclass(frozen=True)
class PoolInfo:
    """What a device knows of a pool it belongs to."""

    name: str
    pool_id: str
    root_fingerprint: str
    role: Role


def read_pool_info(home: Home, name: str) -> PoolInfo | None:
    """pool.json of a pool, or None when this device has no material for it."""
    path = home.pool_dir(name) / "pool.json"
    try:
        raw = json.loads(path.read_text())
        return PoolInfo(raw["name"], raw["poolId"], raw["rootFingerprint"], raw["role"])
    except FileNotFoundError:
        return None


def write_pool_info(home: Home, info: PoolInfo) -> None:
    """Record pool.json (last, after the key and certificate, so it marks completion)."""
    document = {
        "name": info.name,
        "poolId": info.pool_id,
        "rootFingerprint": info.root_fingerprint,
        "role": info.role,
    }
    write_atomic(home.pool_dir(info.name) / "pool.json", json.dumps(document, indent=2).encode())


def create_root(home: Home, name: str) -> PoolInfo:
    """Make a new pool root CA on this device (the admin) and record it."""
    root = create_pool_root(os.urandom(32), name, now=time.time())
    directory = home.pool_dir(name)
    write_atomic(directory / "root.key", root.identity.private_key_pem(), mode=0o600)
    write_atomic(directory / "ca.crt", root.anchor.cert_pem)
    info = PoolInfo(name, root.pool_id, root.fingerprint, "admin")
    write_pool_info(home, info)
    return info


def load_root(home: Home, name: str) -> PoolRoot:
    """The pool root CA (admin device only)."""
    directory = home.pool_dir(name)
    identity = NodeIdentity.from_private_key_pem((directory / "root.key").read_bytes())
    return PoolRoot.load(identity.seed, _pem_to_der((directory / "ca.crt").read_bytes()), name)


def load_anchor(home: Home, name: str, pinned_fingerprint: str) -> TrustAnchor:
    """The pool's root certificate, checked against the pinned fingerprint."""
    der = _pem_to_der((home.pool_dir(name) / "ca.crt").read_bytes())
    return TrustAnchor.from_cert_der(der, pinned_fingerprint=pinned_fingerprint)


def _pem_to_der(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
