"""The local API's streams (localapi.py): each pushes a message as something happens,
and none polls.

- ``watch``: the store's revision, at once and whenever it moves (the agent's own writes
  through ``Store.on_change``, everyone else's through its notify socket; both reach the
  ``ChangeHub``). A reader that falls behind gets the latest revision, not every one.
- ``follow-job``: the job runner's events of one job (snapshot, phase, progress, token),
  merged with the store's view of it: ``status`` (phase, resourceVersion) whenever the
  stored Job changed, so a job the runner never carries (refused by its controller,
  queued, run before the agent restarted) is followed to its end too, and ``deleted``.

A join's progress needs no op of its own: it is observed state that moves the revision
(`mesh pool-join` watches, then reads the store). A stream ends when its subject ends
(a terminal phase, ``deleted``) or the client closes its side of the connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from reconciler.runtime.jobfeed import TERMINAL, Event, Follower
from reconciler.store import Store
from reconciler.storenotify import ChangeHub

Send = Callable[[Event], Awaitable[None]]


def ends(event: Event) -> bool:
    """Whether a follow-job event is the stream's last."""
    return event.get("phase") in TERMINAL or event.get("event") == "deleted"


async def _first(wanted: Awaitable[Any], gone: asyncio.Future[bytes]) -> Any | None:
    """``wanted``'s result, or None once the client left (``wanted`` is then cancelled)."""
    task = asyncio.ensure_future(wanted)
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():
            await _cancel({task})
    return task.result() if not task.cancelled() else None


async def _cancel(tasks: set[asyncio.Future[Any]]) -> None:
    """Cancel ``tasks`` and wait until they ended (a task left pending outlives its loop)."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def watch(changes: ChangeHub, send: Send, gone: asyncio.Future[bytes]) -> None:
    """Push ``{"event": "changed", "revision": R}`` now and on every move of R."""
    revision: int | None = None
    while True:
        current = (
            changes.revision if revision is None else await _first(changes.changed(revision), gone)
        )
        if current is None:
            return
        revision = current
        await send({"event": "changed", "revision": revision})


def stored_job(store: Store, name: str, seen: str | None) -> tuple[Event | None, str | None]:
    """The store's news of Job ``name`` since resourceVersion ``seen``: (an event or
    None, the version now)."""
    document = next(iter(store.documents("Job", name)), None)
    if document is None:
        return {"event": "deleted", "name": name}, None
    version = str(document["metadata"].get("resourceVersion"))
    if version == seen:
        return None, seen
    phase = (document.get("status") or {}).get("phase")
    return {"event": "status", "phase": phase, "resourceVersion": version}, version


async def follow_job(
    name: str,
    follower: Follower,
    store: Store | None,
    changes: ChangeHub | None,
    send: Send,
    gone: asyncio.Future[bytes],
) -> None:
    """Push the runner's events of job ``name`` and the store's (module docstring)."""
    revision, seen = -2, None
    while True:
        if not follower.queue.empty():  # the runner's events first: they are the newest
            event: Event | None = follower.queue.get_nowait()
        elif store is not None and changes is not None and changes.revision != revision:
            revision = changes.revision
            event, seen = stored_job(store, name, seen)
        else:
            event = await _first(_next(follower, changes, revision), gone)
            if event is None:
                return
            if event.get("event") == "wake":
                continue
        if event is not None:
            await send(event)
            if ends(event):
                return


async def _next(follower: Follower, changes: ChangeHub | None, revision: int) -> Event:
    """The runner's next event, or ``{"event": "wake"}`` once the store's revision moved."""
    waiting: set[asyncio.Future[Any]] = {asyncio.ensure_future(follower.next())}
    if changes is not None:
        waiting.add(asyncio.ensure_future(changes.changed(revision)))
    try:
        done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    finally:
        await _cancel({task for task in waiting if not task.done()})
    for task in done:
        result = task.result()
        if isinstance(result, dict):
            return result
    return {"event": "wake"}
