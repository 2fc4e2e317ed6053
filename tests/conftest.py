"""Fixtures shared by every test: a private MESHNET_HOME per test."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reconciler.certs.identity import NodeIdentity
from reconciler.certs.member import sign_member_certificate
from reconciler.certs.root import PoolRoot
from reconciler.certs.x509util import der_to_pem
from reconciler.drivers.tls import TlsFiles
from reconciler.home import Home

REPO = Path(__file__).resolve().parent.parent
# Network safety: onnxruntime's telemetry (DNS lookups of a Microsoft host) stays off in
# every test process and every agent a test starts, whatever it imports first.
os.environ["ORT_DISABLE_TELEMETRY"] = "1"


@pytest.fixture(autouse=True)
def beacons_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Network safety: in the default namespace every beacon stays on loopback (TTL 0),
    on a port of its own. Namespace tests set their own environment per device."""
    monkeypatch.setenv("MESHNET_BEACON_INTERFACE", "127.0.0.1")
    monkeypatch.setenv("MESHNET_BEACON_PORT", str(45000 + secrets.randbelow(5000)))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Home]:
    """An empty device home, also exported as MESHNET_HOME."""
    root = tmp_path / "meshnet-home"
    monkeypatch.setenv("MESHNET_HOME", str(root))
    yield Home(root)


MemberFactory = Callable[[Path, PoolRoot, str], tuple[NodeIdentity, TlsFiles]]


@pytest.fixture
def member_tls() -> MemberFactory:
    """Makes a member of a pool: its identity and PEM files for TLS peer links."""

    def make(tmp: Path, root: PoolRoot, name: str) -> tuple[NodeIdentity, TlsFiles]:
        identity = NodeIdentity(os.urandom(32))
        cert = sign_member_certificate(
            root, identity.public_key, identity.node_id, "member", time.time()
        )
        files = TlsFiles(tmp / f"{name}.crt", tmp / f"{name}.key", tmp / f"{name}-ca.crt")
        files.cert.write_bytes(der_to_pem(cert))
        files.key.write_bytes(identity.private_key_pem())
        files.ca.write_bytes(root.anchor.cert_pem)
        return identity, files

    return make
