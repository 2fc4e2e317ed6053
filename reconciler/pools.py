"""A pool's material on disk, under MESHNET_HOME/pools/<name>/.

root.key   the pool root CA key (admin device only; mode 0600, PKCS8 PEM)
ca.crt     the pool root CA certificate (PEM)
pool.json  {"name", "poolId", "rootFingerprint", "role"}
"""

from __future__ import annotations

import json
import os
import time

from reconciler.certs.files import load_certificate, load_identity, save_certificate, save_identity
from reconciler.certs.root import PoolRoot, create_pool_root
from reconciler.home import Home, write_atomic
from reconciler.poolinfo import PoolInfo


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
    save_identity(directory / "root.key", root.identity)
    save_certificate(directory / "ca.crt", root.cert_der)
    info = PoolInfo(name, root.pool_id, root.fingerprint, "admin")
    write_pool_info(home, info)
    return info


def load_root(home: Home, name: str) -> PoolRoot:
    """The pool root CA (admin device only)."""
    directory = home.pool_dir(name)
    identity = load_identity(directory / "root.key")
    return PoolRoot.load(identity.seed, load_certificate(directory / "ca.crt"), name)
