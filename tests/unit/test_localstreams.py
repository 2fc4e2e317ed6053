"""The local API's pushed streams: the agent's change hub, ``watch`` (the store's
revision as writers move it) and ``follow-job``'s view of the stored Job (a job the
runner never carries is followed to its end, a deleted one ends the stream)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from manifests import Job, Pool
from meshctl.agentclient import AgentClient
from reconciler.home import Home
from reconciler.runtime.jobfeed import Follower, JobFeed
from reconciler.store import Store
from reconciler.storenotify import ChangeHub
from tests.agent_thread import idle_runner, local_api_thread

IDLE = 30.0  # a stream that pushes nothing fails the test instead of hanging it
SNAPSHOT: dict[str, Any] = {"event": "snapshot", "phase": None, "tokens": [], "text": ""}


def test_the_hub_wakes_every_waiter_with_the_latest_revision() -> None:
    async def scenario() -> tuple[list[int], int]:
        hub = ChangeHub()
        hub.publish(4)
        waiters = [asyncio.create_task(hub.changed(4)) for _ in range(3)]
        await asyncio.sleep(0)  # every waiter is parked on the hub
        assert not any(w.done() for w in waiters)
        hub.publish(5)
        hub.publish(6)  # a burst: the waiters were woken once, with what is newest
        woken = await asyncio.gather(*waiters)
        return woken, await hub.changed(5)  # behind already: at once

    woken, behind = asyncio.run(scenario())
    assert woken == [5, 5, 5]
    assert behind == 6


@pytest.fixture
def store(home: Home) -> Iterator[Store]:
    with Store.open(home.root) as opened:
        opened.apply(Pool.model_validate({"metadata": {"name": "p"}, "spec": {}}))
        spec = {"pool": "p", "model": "demo", "prompt": "hi"}
        opened.apply(Job.model_validate({"metadata": {"name": "j"}, "spec": spec}))
        yield opened


def test_watch_pushes_each_move_of_the_revision(home: Home, store: Store) -> None:
    with local_api_thread(home, idle_runner(), watch_store=True):
        stream = AgentClient(home.agent_socket).watch(IDLE)
        try:
            first = stream.next_event()
            assert first == {"event": "changed", "revision": store.revision()}
            store.patch_status("Job", "j", {"phase": "Pending"})  # another process's write
            moved = stream.next_event()
            store.delete("Job", "j")
            deleted = stream.next_event()
        finally:
            stream.close()
    assert moved is not None and deleted is not None
    assert first["revision"] < moved["revision"] < deleted["revision"] == store.revision()


def test_a_job_the_runner_never_carries_is_followed_to_its_end(home: Home, store: Store) -> None:
    with local_api_thread(home, idle_runner(), watch_store=True):
        events: list[Any] = []
        for event in AgentClient(home.agent_socket).follow_job("j", IDLE):
            assert event is not None, "the agent pushed nothing"
            events.append(event)
            if event["event"] == "status" and event["phase"] is None:
                store.patch_status("Job", "j", {"phase": "Pending"})
            elif event["event"] == "status" and event["phase"] == "Pending":
                store.patch_status("Job", "j", {"phase": "Failed", "failureReason": "X"})
    assert [(e["event"], e["phase"]) for e in events] == [
        ("snapshot", None),
        ("status", None),
        ("status", "Pending"),
        ("status", "Failed"),
    ]
    job = store.require("Job", "j")
    assert events[-1]["resourceVersion"] == job.metadata.resource_version


def test_a_deleted_job_ends_its_stream(home: Home, store: Store) -> None:
    followed: list[Follower] = []
    feed = JobFeed()

    def follow(name: str) -> Follower:
        followed.append(feed.subscribe(name, dict(SNAPSHOT)))
        return followed[-1]

    with local_api_thread(home, follow, watch_store=True):
        events: list[Any] = []
        for event in AgentClient(home.agent_socket).follow_job("j", IDLE):
            assert event is not None, "the agent pushed nothing"
            events.append(event)
            if event["event"] == "status":
                store.delete("Job", "j")
    assert [e["event"] for e in events] == ["snapshot", "status", "deleted"]
    assert not feed.followed("j")  # the stream's end dropped its follower
