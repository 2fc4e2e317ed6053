"""Finding 3: local users cannot read the home's secrets (node key, token keys in
state.db). The home is made 0700 on every start, the store files 0600, and a home
that cannot be made private is refused with the command that fixes it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from meshctl.main import app
from reconciler.home import Home
from reconciler.node import init_node
from reconciler.store import Store, StoreError
from reconciler.store_admin import issue_token


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_store_is_private_with_its_wal_and_shm(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    with Store.open(home.root) as store:
        issue_token(store, "lab", 60.0)  # a write: the WAL and shared-memory files exist
        files = [home.state_db, home.root / "state.db-wal", home.root / "state.db-shm"]
        assert all(f.exists() for f in files)
        assert [mode(f) for f in files] == [0o600, 0o600, 0o600]
    assert mode(home.root) == 0o700


def test_a_readable_home_is_made_private_on_every_start(tmp_path: Path) -> None:
    """What device1.sh used to leave: a 0755 home and a 0644 state.db."""
    root = tmp_path / "home"
    root.mkdir(mode=0o755)
    os.chmod(root, 0o755)
    (root / "state.db").touch()
    os.chmod(root / "state.db", 0o644)
    with Store.open(root):
        pass
    assert (mode(root), mode(root / "state.db")) == (0o700, 0o600)
    os.chmod(root, 0o750)
    init_node(Home(root), "net", "laptop")
    assert mode(root) == 0o700 and mode(root / "node.key") == 0o600


def test_a_home_of_another_user_that_others_can_read_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "shared"
    root.mkdir()
    os.chmod(root, 0o755)
    monkeypatch.setattr(os, "geteuid", lambda: root.stat().st_uid + 4242)
    with pytest.raises(StoreError, match=f"chmod 700 {root}"):
        Store.open(root)
    monkeypatch.setenv("MESHNET_HOME", str(root))
    from meshctl.context import State

    monkeypatch.setattr(State, "home", Home(root))
    result = CliRunner().invoke(app, ["get", "pools"])
    assert result.exit_code == 1
    assert "readable by group or others" in result.stderr and "chmod 700" in result.stderr
    assert not (root / "state.db").exists()
