"""Key and certificate files: mode 0600, atomic replace, round trips."""

from __future__ import annotations

import stat
from pathlib import Path

from reconciler.certs import files
from reconciler.certs.identity import NodeIdentity
from reconciler.certs.root import PoolRoot


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_certs_identity_file_is_private_and_stable(tmp_path: Path) -> None:
    path = tmp_path / "home" / "node.key"
    first = files.load_or_create_identity(path)
    assert _mode(path) == 0o600
    assert files.load_or_create_identity(path).public_key == first.public_key
    assert [p.name for p in path.parent.iterdir()] == ["node.key"]  # no temp files left


def test_certs_write_private_replaces_atomically(tmp_path: Path, alice: NodeIdentity) -> None:
    path = tmp_path / "node.key"
    path.write_bytes(b"old")
    path.chmod(0o644)
    files.save_identity(path, alice)
    assert _mode(path) == 0o600
    assert files.load_identity(path).public_key == alice.public_key


def test_certs_certificate_file_round_trip(tmp_path: Path, root: PoolRoot) -> None:
    path = tmp_path / "root.crt"
    files.save_certificate(path, root.cert_der)
    assert _mode(path) == 0o600
    assert files.load_certificate(path) == root.cert_der
