"""Observed state the runtimes publish: written only when it changed (each write wakes
every agent), under one key per pool or member, with loop times shown as RFC 3339."""

from __future__ import annotations

import time
from typing import Any

from reconciler import observed
from reconciler.home import Home
from reconciler.store import Store


def test_publish_writes_only_what_changed(home: Home) -> None:
    cache: dict[str, Any] = {}
    with Store.open(home.root) as store:
        writes: list[str] = []
        put = store.put_observed

        def counted(key: str, value: Any) -> None:
            writes.append(key)
            put(key, value)

        store.put_observed = counted  # type: ignore[method-assign]
        key = observed.peers_key("p")
        observed.publish(store, key, [{"nodeId": "node-a"}], cache)
        observed.publish(store, key, [{"nodeId": "node-a"}], cache)
        assert writes == [key]  # unchanged: no second write, nobody woken
        observed.publish(store, key, [{"nodeId": "node-b"}], cache)
        assert writes == [key, key]
        assert store.get_observed(key) == [{"nodeId": "node-b"}]
        observed.publish(store, observed.ring_key("p"), {"converged": True}, cache)
        assert store.get_observed("ring/p") == {"converged": True}


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


def test_loop_times_become_wall_clock_text() -> None:
    assert observed.wall_time(None, 100.0) is None
    now_text = observed.wall_time(500.0, 500.0)
    hour_ago = observed.wall_time(500.0 - 3600.0, 500.0)
    assert now_text is not None and hour_ago is not None
    parsed_now = time.strptime(now_text, "%Y-%m-%dT%H:%M:%SZ")
    parsed_ago = time.strptime(hour_ago, "%Y-%m-%dT%H:%M:%SZ")
    # an hour apart (give or take the second the two calls may straddle)
    assert 3599 <= time.mktime(parsed_now) - time.mktime(parsed_ago) <= 3601
