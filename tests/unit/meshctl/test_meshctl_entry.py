"""The composition root (reconciler/entry): meshctl's apps get the agent's commands and
the agent's in-process code there; meshctl alone says plainly what it lacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from meshctl import ports
from reconciler import oneshot
from reconciler.entry import mesh_app
from reconciler.entry import meshctl_app as app
from reconciler.entry.side import InProcessSide
from reconciler.home import Home
from reconciler.store import Store
from tests.agent_thread import local_api_thread

REPO = Path(__file__).resolve().parents[3]
runner = CliRunner()


def _python(code: list[str], home: Home) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "MESHNET_HOME": str(home.root)}
    return subprocess.run([sys.executable, *code], env=env, capture_output=True, text=True,
                          timeout=60)  # fmt: skip


def test_the_agents_commands_are_on_the_composed_apps() -> None:
    listed = runner.invoke(app, ["--help"]).stdout
    for command in ("agent", "relay", "control-plane", "dashboard", "apply", "doctor"):
        assert f" {command} " in listed
    assert " start " in runner.invoke(mesh_app, ["--help"]).stdout
    assert "--api-port" in runner.invoke(mesh_app, ["start", "--help"]).stdout
    assert "--watch-dir" in runner.invoke(app, ["agent", "--help"]).stdout


def test_python_m_runs_both_programs(home: Home) -> None:
    meshctl = _python(["-m", "reconciler.entry", "version", "-o", "json"], home)
    mesh = _python(["-m", "reconciler.entry.mesh", "version"], home)
    assert json.loads(meshctl.stdout)["apiVersion"] == "meshnet.dev/v1alpha1"
    assert mesh.stdout.startswith("meshctl ")


def test_meshctl_alone_says_it_needs_the_agents_code(home: Home) -> None:
    script = ("from meshctl.seed import app; app(['inference', '--local', '--model', 'demo', "
              "'--prompt', 'hi'], prog_name='mesh')")  # fmt: skip
    done = _python(["-c", script], home)
    assert done.returncode == 1
    assert "needs the agent's code (run_local)" in done.stderr
    assert "No such command 'agent'" in _python(
        ["-c", "from meshctl.main import app; app(['agent'], prog_name='meshctl')"], home
    ).stderr


LIVE_PEER = {"pool": "test-pool", "nodeId": "node-b", "name": "b", "address": "10.0.0.2:1",
             "status": "ONLINE", "linkConnected": True}  # fmt: skip
LIVE_RING = {"pool": "test-pool", "epoch": 7, "converged": True, "members": [{}, {}]}


def _observe(what: str, pool: str | None) -> list[dict[str, Any]]:
    return [LIVE_PEER] if what == "peers" else [LIVE_RING]


def _doctor(topic: str) -> list[str]:
    findings = json.loads(runner.invoke(app, ["doctor", "-o", "json"]).stdout)
    return [f["message"] for f in findings["sections"]["pool test-pool"] if f["topic"] == topic]


def test_doctor_asks_the_running_agent_what_it_sees(home: Home) -> None:
    """Its beacon interfaces, peers and ring over the local API; with no agent, the
    interface probe runs in the command and the rest is what the store last holds."""
    assert runner.invoke(mesh_app, ["init", "--name", "a"]).exit_code == 0
    assert runner.invoke(mesh_app, ["pool-create", "--name", "test-pool"]).exit_code == 0
    alone = (_doctor("beacons")[0], _doctor("link"), _doctor("ring"))
    with local_api_thread(home, lambda name: NotImplemented, _observe):
        live = (_doctor("beacons")[0], _doctor("link"), _doctor("ring"))
    assert "127.0.0.1" in alone[0] and "as this command sees them" in alone[0]
    assert alone[1:] == ([], ["no ring yet"])
    assert "127.0.0.1" in live[0] and "as the agent sees them" in live[0]
    assert live[1] == ["b 10.0.0.2:1: ONLINE, link up (direct), rtt -, throughput -"]
    assert live[2] == ["converged: epoch 7, 2 member(s)"]


class _NoInProcessReconcile(InProcessSide):
    def reconcile_now(self, *args: Any) -> None:
        raise AssertionError("a second executor ran in the CLI while an agent runs")


def test_pool_create_has_the_running_agent_reconcile(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert runner.invoke(mesh_app, ["init", "--name", "a"]).exit_code == 0
    asked: list[tuple[str, str]] = []

    def reconcile(kind: str, name: str) -> None:  # what the agent's executor does
        asked.append((kind, name))
        with Store.open(home.root) as store:
            oneshot.reconcile_now(home, store, kind, name)

    monkeypatch.setattr(ports, "_side", _NoInProcessReconcile())
    with local_api_thread(home, lambda name: NotImplemented, None, reconcile):
        created = runner.invoke(mesh_app, ["pool-create", "--name", "test-pool"])
    assert created.exit_code == 0, created.stderr
    assert asked == [("Pool", "test-pool")]
    assert "Pool ID:" in created.stdout and "sha256:" in created.stdout
