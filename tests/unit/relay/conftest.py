"""Relay fixtures: a pool made on an admin home, member TLS files, a running relay."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.certs.identity import NodeIdentity
from reconciler.certs.member import sign_member_certificate
from reconciler.certs.root import PoolRoot
from reconciler.certs.x509util import der_to_pem
from reconciler.drivers.tls import TlsFiles
from reconciler.home import Home
from reconciler.pools import create_root, load_root


@dataclass(frozen=True)
class Member:
    identity: NodeIdentity
    files: TlsFiles

    @property
    def node_id(self) -> str:
        return self.identity.node_id


@dataclass(frozen=True)
class PoolKit:
    home: Home
    root: PoolRoot
    tmp: Path

    @property
    def ca_file(self) -> Path:
        return self.home.pool_dir(self.root.name) / "ca.crt"

    def member(self, name: str) -> Member:
        identity = NodeIdentity(os.urandom(32))
        cert = sign_member_certificate(self.root, identity.public_key, name, "member", time.time())
        files = TlsFiles(self.tmp / f"{name}.crt", self.tmp / f"{name}.key", self.ca_file)
        files.cert.write_bytes(der_to_pem(cert))
        files.key.write_bytes(identity.private_key_pem())
        return Member(identity, files)


def make_pool(home: Home, name: str, tmp: Path) -> PoolKit:
    create_root(home, name)
    tmp.mkdir(parents=True, exist_ok=True)
    return PoolKit(home, load_root(home, name), tmp)


@pytest.fixture
def pool(home: Home, tmp_path: Path) -> PoolKit:
    return make_pool(home, "lab", tmp_path / "members")


@pytest.fixture
def pool_factory(home: Home, tmp_path: Path) -> Callable[[str], PoolKit]:
    """More pools on the same home (strangers to the first)."""
    return lambda name: make_pool(home, name, tmp_path / name)
