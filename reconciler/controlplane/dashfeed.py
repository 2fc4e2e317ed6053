"""When the dashboard's live stream sends a new snapshot, and the answers' text as it
streams (dashboard.py).

- Every move of the store's revision, pushed by the agent (its local API's ``watch``).
- Every token of a job that has not ended, pushed by the agent (``follow-job``): a job's
  text in the snapshot is the pushed one where it is ahead of the store's.
- Volatile observed state (peers' counters, last seen) moves no revision and nobody
  announces it: the snapshot is refreshed every ``REFRESH_SECONDS`` when SQLite's
  ``data_version`` moved since the last one. Where no agent answers, that refresh is
  all there is.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from reconciler.controlplane.agentfeed import AgentFeedError, agent_stream
from reconciler.store import Store

REFRESH_SECONDS = 2.0
ENDED = ("Succeeded", "Failed")
Snapshot = dict[str, Any]


class DashFeed:
    """Wake-ups of one dashboard stream, and the pushed text of the jobs it shows."""

    def __init__(self, socket: Path, store: Store) -> None:
        self.socket, self.store = socket, store
        self.dirty = asyncio.Event()
        self.texts: dict[str, str] = {}  # job name -> text pushed so far
        self._followed: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.version = -1  # the store's data_version at the last snapshot
        self.revision = -1  # ... and its revision

    def start(self) -> None:
        for work in (self._watch(), self._refresh()):
            self._tasks.add(asyncio.get_running_loop().create_task(work))

    async def close(self) -> None:
        tasks = self._tasks | set(self._followed.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def follow(self, jobs: list[dict[str, Any]]) -> None:
        """Follow the tokens of each job shown that has not ended (once per job)."""
        for job in jobs:
            name = str(job["name"])
            if job["phase"] not in ENDED and name not in self._followed:
                task = asyncio.get_running_loop().create_task(self._follow_job(name))
                self._followed[name] = task

    def overlay(self, jobs: list[dict[str, Any]]) -> None:
        """Put the pushed text into the jobs shown, where it is ahead of the store's."""
        for job in jobs:
            pushed = self.texts.get(str(job["name"]), "")
            if len(pushed) > len(job["output"]) and job["phase"] not in ENDED:
                job["output"] = pushed

    async def _watch(self) -> None:
        with contextlib.suppress(AgentFeedError):
            async with agent_stream(self.socket, {"op": "watch"}) as events:
                async for event in events:
                    if event.get("revision") != self.revision:  # the first may be old news
                        self.dirty.set()

    async def _follow_job(self, name: str) -> None:
        text = ""
        with contextlib.suppress(AgentFeedError):
            async with agent_stream(self.socket, {"op": "follow-job", "name": name}) as events:
                async for event in events:
                    if event.get("event") == "snapshot":
                        text = str(event.get("text", ""))
                    elif event.get("event") == "token":
                        text += str(event.get("text", ""))
                    if text != self.texts.get(name, ""):
                        self.texts[name] = text
                        self.dirty.set()

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            if self.store.data_version() != self.version:
                self.dirty.set()


async def snapshots(
    feed: DashFeed, build: Callable[[], Snapshot], keepalive: float
) -> AsyncIterator[Snapshot | None]:
    """A snapshot now and after each wake-up; None after ``keepalive`` seconds of quiet."""
    feed.start()
    try:
        while True:
            feed.dirty.clear()
            feed.version, feed.revision = feed.store.data_version(), feed.store.revision()
            snapshot = build()
            for pool in snapshot["pools"]:
                feed.follow(pool["jobs"])
                feed.overlay(pool["jobs"])
            yield snapshot
            while True:
                try:
                    await asyncio.wait_for(feed.dirty.wait(), keepalive)
                    break
                except TimeoutError:
                    yield None
    finally:
        await feed.close()
