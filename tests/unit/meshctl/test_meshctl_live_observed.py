"""`meshctl get peers|ring` ask the running agent what it sees now, and read the
store's last published state only when no agent answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from typer.testing import CliRunner

from reconciler.entry import mesh_app
from reconciler.entry import meshctl_app as app
from reconciler.home import Home
from reconciler.runtime.jobfeed import JobFeed
from reconciler.store import Store
from tests.agent_thread import local_api_thread

runner = CliRunner()
LIVE_PEER = {"pool": "test-pool", "nodeId": "node-b", "name": "b", "address": "10.0.0.2:1",
             "status": "ONLINE", "lastSeen": "2026-11-29T17:00:01Z"}  # fmt: skip
STALE_PEER = {"nodeId": "node-old", "name": "old", "address": "10.0.0.9:1", "status": "ONLINE",
              "lastSeen": "2026-01-01T00:00:00Z"}  # fmt: skip


@contextmanager
def _agent(home: Home) -> Iterator[list[tuple[str, str | None]]]:
    """A local API in a thread that answers peers with LIVE_PEER (and no ring)."""
    asked: list[tuple[str, str | None]] = []
    feed = JobFeed()

    def observe(what: str, pool: str | None) -> list[dict[str, Any]]:
        asked.append((what, pool))
        return [LIVE_PEER] if what == "peers" else []

    with local_api_thread(home, lambda n: feed.subscribe(n, {}), observe):
        yield asked


def test_get_peers_asks_the_agent_then_falls_back_to_the_store(home: Home) -> None:
    assert runner.invoke(mesh_app, ["init", "--name", "admin"]).exit_code == 0
    assert runner.invoke(mesh_app, ["pool-create", "--name", "test-pool"]).exit_code == 0
    with Store.open(home.root) as store:
        store.put_observed("peers/test-pool", [STALE_PEER])
    with _agent(home) as asked:
        live = json.loads(runner.invoke(app, ["get", "peers", "-o", "json"]).stdout)["items"]
        rings = json.loads(runner.invoke(app, ["get", "ring", "-o", "json"]).stdout)["items"]
    assert (live, rings) == ([LIVE_PEER], [])
    assert asked == [("peers", None), ("ring", None)]
    stored = json.loads(runner.invoke(app, ["get", "peers", "-o", "json"]).stdout)["items"]
    assert stored == [{"pool": "test-pool", **STALE_PEER}]  # what was last published
