"""Observed state the runtimes publish: written only when it changed (a write wakes the
agent's controllers unless volatile), under one key per pool or member, with loop times
shown as RFC 3339."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler import observed
from reconciler.home import Home
from reconciler.store import Store


def test_publish_writes_only_what_changed(home: Home) -> None:
    cache: dict[str, Any] = {}
    with Store.open(home.root) as store:
        key = observed.peers_key("p")
        observed.publish(store, key, [{"nodeId": "node-a"}], cache)
        written = store.revision()
        store.put_observed(key, "changed behind the cache's back")
        observed.publish(store, key, [{"nodeId": "node-a"}], cache)
        assert store.get_observed(key) == "changed behind the cache's back"  # no rewrite
        observed.publish(store, key, [{"nodeId": "node-b"}], cache)
        assert store.get_observed(key) == [{"nodeId": "node-b"}]
        assert store.revision() > written
        observed.publish(store, observed.ring_key("p"), {"converged": True}, cache)
        assert store.get_observed("ring/p") == {"converged": True}


def test_volatile_state_is_written_but_wakes_nobody(home: Home) -> None:
    cache: dict[str, Any] = {}
    with Store.open(home.root) as store, Store.open(home.root) as reader:
        woken: list[int] = []
        store.on_change(lambda: woken.append(store.revision()))
        revision, version = store.revision(), reader.data_version()
        observed.publish(store, observed.beacons_key("p"), {"sent": 1}, cache, volatile=True)
        assert reader.get_observed("beacons/p") == {"sent": 1}
        assert (store.revision(), woken) == (revision, [])
        assert reader.data_version() != version  # watchers that want counters see them
        observed.publish(store, observed.ring_key("p"), {"epoch": 1}, cache)
        assert woken == [revision + 1]


def test_only_who_and_in_which_state_decides() -> None:
    row = {"nodeId": "a", "name": "dev", "status": "ALIVE", "lastSeen": "t1", "bytesSent": 1}
    later = {**row, "lastSeen": "t2", "bytesSent": 9000}
    assert observed.decisive_peers([row]) == observed.decisive_peers([later])
    assert observed.decisive_peers([row]) != observed.decisive_peers([{**row, "status": "DEAD"}])


def test_keys_name_their_pool_or_member() -> None:
    keys = {
        observed.peers_key("p"),
        observed.ring_key("p"),
        observed.beacons_key("p"),
        observed.gossip_key("p"),
        observed.join_key("p"),
    }
    assert len(keys) == 5 and all(k.endswith("/p") for k in keys)
    assert observed.peers_key("p") != observed.peers_key("q")


def test_loop_times_become_wall_clock_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("reconciler.observed.time.time", lambda: 1_700_000_000.0)
    assert observed.wall_time(None, 100.0) is None
    assert observed.wall_time(500.0, 500.0) == "2023-11-14T22:13:20Z"
    assert observed.wall_time(500.0 - 3600.0, 500.0) == "2023-11-14T21:13:20Z"  # an hour ago
    assert observed.wall_time(499.4, 500.0) == "2023-11-14T22:13:19Z"  # whole seconds
