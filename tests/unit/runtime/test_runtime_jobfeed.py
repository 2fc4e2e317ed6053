"""The job feed hands each follower of a job a snapshot, then every event published for
that job, in order; other jobs' events never reach it, and a closed follower gets none."""

from __future__ import annotations

import asyncio

from reconciler.runtime.jobfeed import Event, Follower, JobFeed, phase_event, token_event


def _queued(follower: Follower) -> list[Event]:
    events = []
    while not follower.queue.empty():
        events.append(follower.queue.get_nowait())
    return events


def test_a_follower_gets_its_snapshot_then_every_event_in_order() -> None:
    feed = JobFeed()
    follower = feed.subscribe("j", {"event": "snapshot", "tokens": [1]})
    published = [phase_event("Running"), token_event(1, 42, "hi", 3.5), phase_event("Succeeded")]
    for event in published:
        feed.publish("j", event)
    assert _queued(follower) == [{"event": "snapshot", "tokens": [1]}, *published]


def test_events_of_other_jobs_do_not_reach_a_follower() -> None:
    feed = JobFeed()
    follower = feed.subscribe("j", {"event": "snapshot"})
    feed.publish("k", token_event(0, 7, "x", 1.0))
    feed.publish("nobody-follows", phase_event("Running"))
    assert _queued(follower) == [{"event": "snapshot"}]


def test_every_follower_of_a_job_gets_every_event() -> None:
    feed = JobFeed()
    early = feed.subscribe("j", {"event": "snapshot", "n": 0})
    feed.publish("j", token_event(0, 1, "a", 1.0))
    late = feed.subscribe("j", {"event": "snapshot", "n": 1})
    feed.publish("j", token_event(1, 2, "b", 2.0))
    assert [e.get("id", "snap") for e in _queued(early)] == ["snap", 1, 2]
    assert [e.get("id", "snap") for e in _queued(late)] == ["snap", 2]


def test_a_closed_follower_gets_nothing_more_and_the_job_is_unfollowed() -> None:
    feed = JobFeed()
    first, second = feed.subscribe("j", {}), feed.subscribe("j", {})
    assert feed.followed("j")
    first.close()
    feed.publish("j", phase_event("Running"))
    assert _queued(first) == [{}]
    assert _queued(second) == [{}, {"event": "phase", "phase": "Running"}]
    assert feed.followed("j")
    second.close()
    second.close()  # twice is harmless
    assert not feed.followed("j")


def test_next_waits_for_the_next_event() -> None:
    async def scenario() -> Event:
        feed = JobFeed()
        follower = feed.subscribe("j", {"event": "snapshot"})
        await follower.next()
        waiting = asyncio.ensure_future(follower.next())
        await asyncio.sleep(0)  # one turn of the loop: the follower is parked, not answered
        assert not waiting.done()
        feed.publish("j", phase_event("Failed", "Cancelled", "by you"))
        return await waiting

    event = asyncio.run(scenario())
    assert event == {"event": "phase", "phase": "Failed", "reason": "Cancelled",
                     "message": "by you"}  # fmt: skip


def test_a_phase_event_carries_a_reason_only_when_given() -> None:
    assert phase_event("Running") == {"event": "phase", "phase": "Running"}
    assert token_event(3, 9, "z", 1.25) == {
        "event": "token", "index": 3, "id": 9, "text": "z", "at": 1.25
    }  # fmt: skip
