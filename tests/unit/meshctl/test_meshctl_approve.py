"""Finding 5: in approve mode a squatter cannot take a device's name. Requests show
their key fingerprint, `certificate approve` needs it confirmed (the device printed it
at `mesh init`), and a renewal keeps the certified name."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from meshctl import admin_cmd
from reconciler.admission_records import record_join
from reconciler.beacon.handlers import join_requested
from reconciler.certs.admission import JoinClaim
from reconciler.certs.desk import AdminDesk
from reconciler.certs.identity import NodeIdentity
from reconciler.certs.member import (
    read_member_certificate,
    sign_member_certificate,
)
from reconciler.entry import mesh_app
from reconciler.entry import meshctl_app as app
from reconciler.home import Home
from reconciler.node import load_identity
from reconciler.pools import load_root, read_pool_info
from reconciler.store import Store
from reconciler.store_admin import approvals

runner = CliRunner()
NOW = 1_750_000_000.0


def _init(home: Path, name: str) -> str:
    """`mesh init` on a device; the fingerprint it prints."""
    result = runner.invoke(mesh_app, ["init", "--name", name], env={"MESHNET_HOME": str(home)})
    assert result.exit_code == 0, result.output
    match = re.search(r"Fingerprint: (sha256:[0-9a-f]{64})", result.stdout)
    assert match is not None
    return match.group(1)


def _request(store: Store, admin: Home, desk: AdminDesk, key: NodeIdentity, name: str) -> None:
    root = load_root(admin, "test-pool")
    claim = JoinClaim(root.pool_id, key.public_key, key.node_id, name, os.urandom(16), NOW)
    source = ("10.0.0.9", 42424)
    answer = desk.answer(claim, source, (), NOW)
    info = read_pool_info(admin, "test-pool")
    assert info is not None and answer.status == "pending"
    record_join(store, info, desk, join_requested(claim, answer, source))


def test_a_squatter_cannot_be_approved_under_the_device_s_name(
    tmp_path: Path, home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    laptop_fp = _init(tmp_path / "laptop-home", "laptop")
    laptop = load_identity(Home(tmp_path / "laptop-home"))
    assert laptop.fingerprint == laptop_fp
    assert runner.invoke(mesh_app, ["init", "--name", "admin"]).exit_code == 0
    create = ["pool-create", "--name", "test-pool", "--admission", "approve"]
    assert runner.invoke(mesh_app, create).exit_code == 0
    squatter = NodeIdentity(os.urandom(32))
    desk = AdminDesk(load_root(home, "test-pool"), "approve")
    with Store.open(home.root) as store:
        _request(store, home, desk, squatter, "laptop")  # first: takes the name
        _request(store, home, desk, laptop, "laptop")
    listing = runner.invoke(app, ["get", "members"]).stdout
    assert squatter.fingerprint[:23] in listing and laptop_fp[:23] in listing
    wide = runner.invoke(app, ["get", "members", "-o", "wide"]).stdout
    assert laptop_fp in wide
    described = runner.invoke(app, ["describe", "member", "laptop"]).stdout
    assert squatter.fingerprint in described

    blind = runner.invoke(app, ["certificate", "approve", "laptop"])
    assert blind.exit_code == 1
    assert squatter.fingerprint in blind.stderr and "--fingerprint" in blind.stderr
    wrong = runner.invoke(app, ["certificate", "approve", "laptop", "--fingerprint", laptop_fp])
    assert wrong.exit_code == 1 and "another device may have taken this name" in wrong.stderr
    short = runner.invoke(app, ["certificate", "approve", "laptop", "--fingerprint", "sha256:12"])
    assert short.exit_code == 1
    with Store.open(home.root) as store:
        assert approvals(store, "test-pool") == {}

    real_name = f"laptop-{laptop.node_id.removeprefix('node-')[:8]}"
    ok = runner.invoke(app, ["certificate", "approve", real_name, "--fingerprint", laptop_fp[:23]])
    assert ok.exit_code == 0, ok.output
    with Store.open(home.root) as store:
        assert approvals(store, "test-pool") == {laptop.node_id: "approved"}

    monkeypatch.setattr(admin_cmd, "_interactive", lambda: True)
    refused = runner.invoke(app, ["certificate", "approve", "laptop"], input="n\n")
    assert refused.exit_code == 1 and squatter.fingerprint in refused.stdout
    confirmed = runner.invoke(app, ["certificate", "approve", "laptop"], input="y\n")
    assert confirmed.exit_code == 0
    with Store.open(home.root) as store:
        assert approvals(store, "test-pool")[squatter.node_id] == "approved"


def test_a_renewal_keeps_the_certified_name(tmp_path: Path) -> None:
    from reconciler.pools import create_root

    admin = Home(tmp_path / "admin")
    create_root(admin, "lab")
    root = load_root(admin, "lab")
    desk = AdminDesk(root, "token")
    member = NodeIdentity(os.urandom(32))
    cert = sign_member_certificate(root, member.public_key, "kitchen-pi", "member", NOW - 86400 * 6)
    renaming = JoinClaim(root.pool_id, member.public_key, member.node_id, "admin-laptop",
                         os.urandom(16), NOW, renewal_cert=cert)  # fmt: skip
    answer = desk.answer(renaming, ("10.0.0.7", 42424), (), NOW)
    assert answer.status == "approved"
    assert read_member_certificate(answer.cert_der).device_name == "kitchen-pi"
