"""In-process notifications of a job's progress: the job runner publishes, followers
(the agent's local API, one queue per connected client) receive every event in order.

Events are plain JSON-ready dicts, pushed as they happen: nothing here polls the store.
A follower subscribes by job name, before or after the job starts; its queue opens with
a snapshot of what the runner already knows, so no token is missed or repeated.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

Event = dict[str, Any]
TERMINAL = ("Succeeded", "Failed")


class Follower:
    """One subscriber's view of one job: an unbounded queue of events, in order."""

    def __init__(self, name: str, on_close: Callable[[Follower], None]) -> None:
        self.name = name
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        self._on_close = on_close

    async def next(self) -> Event:
        return await self.queue.get()

    def close(self) -> None:
        self._on_close(self)


class JobFeed:
    """Subscribers per job name; ``publish`` reaches each of them at once."""

    def __init__(self) -> None:
        self._followers: dict[str, list[Follower]] = {}

    def subscribe(self, name: str, snapshot: Event) -> Follower:
        """A follower of ``name`` whose first event is ``snapshot`` (what is known now)."""
        follower = Follower(name, self._drop)
        follower.queue.put_nowait(snapshot)
        self._followers.setdefault(name, []).append(follower)
        return follower

    def followed(self, name: str) -> bool:
        return bool(self._followers.get(name))

    def publish(self, name: str, event: Event) -> None:
        for follower in self._followers.get(name, ()):
            follower.queue.put_nowait(event)

    def _drop(self, follower: Follower) -> None:
        followers = self._followers.get(follower.name, [])
        if follower in followers:
            followers.remove(follower)
        if not followers:
            self._followers.pop(follower.name, None)


def token_event(index: int, token_id: int, text: str, at: float) -> Event:
    """A token as the coordinator produced it (``at``: time.monotonic() then)."""
    return {"event": "token", "index": index, "id": token_id, "text": text, "at": at}


def phase_event(phase: str, reason: str = "", message: str = "") -> Event:
    """The job's phase changed; Succeeded or Failed end the stream (the final
    figures are in the store by then)."""
    event: Event = {"event": "phase", "phase": phase}
    if reason:
        event["reason"], event["message"] = reason, message
    return event
