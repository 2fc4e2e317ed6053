"""The agent as a real process: apply -> Ready, GitOps, crash and restart, one per home."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

from agents import AgentProcess, cli, ready, stored, wait_for, write

from manifests import Pool
from reconciler.home import Home
from reconciler.store import Store

POOL = """apiVersion: meshnet.dev/v1alpha1
kind: Pool
metadata:
  name: {name}
spec:
  admission: {admission}
"""

Start = Callable[..., AgentProcess]


def _init(home: Home) -> None:
    cli(home, "init", "--network-id", "test", "--name", "dev1")


def test_apply_then_ready_then_clean_stop(home: Home, start_agent: Start, tmp_path: Path) -> None:
    _init(home)
    agent = start_agent(home)
    manifest = tmp_path / "pool.yaml"
    manifest.write_text(POOL.format(name="test-pool", admission="token"))
    cli(home, "apply", "-f", str(manifest))
    pool = wait_for(lambda: ready(home, "Pool", "test-pool"), what="pool Ready")
    assert isinstance(pool, Pool) and pool.status.pool_id and pool.status.role == "admin"
    assert pool.status.observed_generation == 1
    assert agent.stop(signal.SIGTERM) == 0
    assert "agent stopped" in home.log_file("agent").read_text()


def test_pool_waits_for_init_with_a_reason(home: Home, start_agent: Start, tmp_path: Path) -> None:
    start_agent(home)
    manifest = tmp_path / "pool.yaml"
    manifest.write_text(POOL.format(name="p", admission="token"))
    cli(home, "apply", "-f", str(manifest))

    def reason() -> str | None:
        obj = stored(home, "Pool", "p")
        condition = obj.status.condition("Ready") if obj else None
        return condition.reason if condition else None

    assert wait_for(reason) == "NodeNotInitialized"
    _init(home)
    wait_for(lambda: ready(home, "Pool", "p"), what="pool Ready after init")


def test_second_agent_for_the_same_home_is_refused(home: Home, start_agent: Start) -> None:
    _init(home)
    start_agent(home)
    second = start_agent(home)
    assert second.proc.wait(15) == 1
    assert "already running" in second.output()


def test_kill_9_then_restart_loses_nothing(home: Home, start_agent: Start, tmp_path: Path) -> None:
    _init(home)
    agent = start_agent(home)
    manifest = tmp_path / "pool.yaml"
    manifest.write_text(POOL.format(name="test-pool", admission="token"))
    cli(home, "apply", "-f", str(manifest))
    before = wait_for(lambda: ready(home, "Pool", "test-pool"))
    agent.kill()
    start_agent(home)
    manifest.write_text(POOL.format(name="test-pool", admission="auto"))
    cli(home, "apply", "-f", str(manifest))

    def reconciled() -> Pool | None:
        obj = ready(home, "Pool", "test-pool")
        return obj if isinstance(obj, Pool) and obj.status.observed_generation == 2 else None

    after = wait_for(reconciled, what="generation 2 reconciled")
    assert isinstance(before, Pool)
    assert after.status.pool_id == before.status.pool_id
    assert after.metadata.uid == before.metadata.uid


def test_gitops_add_change_invalid_delete(home: Home, start_agent: Start, tmp_path: Path) -> None:
    _init(home)
    folder = tmp_path / "manifests"
    folder.mkdir()
    by_hand = tmp_path / "by-hand.yaml"
    by_hand.write_text(POOL.format(name="manual", admission="token"))
    cli(home, "apply", "-f", str(by_hand))
    start_agent(home, "--watch-dir", str(folder))

    file = folder / "pool.yaml"
    write(file, POOL.format(name="git-pool", admission="token"))
    wait_for(lambda: ready(home, "Pool", "git-pool"), what="pool from folder Ready")

    write(file, POOL.format(name="git-pool", admission="approve"))

    def admission() -> str | None:
        obj = stored(home, "Pool", "git-pool")
        return obj.spec.admission if isinstance(obj, Pool) else None

    wait_for(lambda: admission() == "approve", what="changed file applied")

    write(file, POOL.format(name="git-pool", admission="sometimes"))

    def synced_false() -> str | None:
        obj = stored(home, "Pool", "git-pool")
        condition = obj.status.condition("Synced") if obj else None
        return condition.message if condition and condition.status == "False" else None

    message = wait_for(synced_false, what="invalid file reported")
    assert "pool.yaml:6:3 spec.admission" in message
    assert admission() == "approve"  # the last good version stays
    with Store.open(home.root) as store:
        assert any(e.reason == "InvalidManifest" for e in store.events(limit=100))

    write(file, POOL.format(name="git-pool", admission="approve"))
    wait_for(lambda: synced_false() is None, what="condition cleared by a valid file")

    file.unlink()
    wait_for(lambda: stored(home, "Pool", "git-pool") is None, what="deleted with its file")
    assert stored(home, "Pool", "manual") is not None  # applied by hand: never touched


def test_gitops_startup_sync_removes_objects_of_vanished_files(
    home: Home, start_agent: Start, tmp_path: Path
) -> None:
    _init(home)
    folder = tmp_path / "manifests"
    folder.mkdir()
    write(folder / "a.yaml", POOL.format(name="a", admission="token"))
    write(folder / "b.yaml", POOL.format(name="b", admission="token"))
    agent = start_agent(home, "--watch-dir", str(folder))
    wait_for(lambda: ready(home, "Pool", "b"))
    agent.stop()
    (folder / "b.yaml").unlink()
    start_agent(home, "--watch-dir", str(folder))
    wait_for(lambda: stored(home, "Pool", "b") is None, what="b removed on startup")
    assert stored(home, "Pool", "a") is not None
