"""The agent's local API served from a thread with an event loop of its own, for CLI
tests: the CLI under test runs in the test's thread, as it would in its own process."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from reconciler.home import Home
from reconciler.localapi import LocalApi, Observe, Reconcile
from reconciler.runtime.jobfeed import Follower, JobFeed
from reconciler.store import Store
from reconciler.storenotify import ChangeHub, StoreWatch, notify_path


def idle_runner() -> Callable[[str], Follower]:
    """``follow`` of a job runner that carries no job (an empty snapshot, then nothing)."""
    feed = JobFeed()
    return lambda name: feed.subscribe(
        name, {"event": "snapshot", "phase": None, "tokens": [], "text": ""}
    )


@contextmanager
def local_api_thread(
    home: Home,
    follow: Callable[[str], Follower],
    observe: Observe | None = None,
    reconcile: Reconcile | None = None,
    watch_store: bool = False,
) -> Iterator[None]:
    """Serve ``home``'s agent socket until the block ends (``follow`` and ``observe``
    are called on the API's loop, so they may use ``asyncio.get_running_loop()``).
    ``watch_store``: as the agent does, bind the store's notify socket and serve the
    streams that follow the store (``watch``, the ``status`` events of ``follow-job``)."""
    loop, ready, stop = asyncio.new_event_loop(), threading.Event(), asyncio.Event()

    async def serve() -> None:
        store = Store.open(home.root, ping_agent=False) if watch_store else None
        changes = ChangeHub() if store is not None else None
        watch = None
        if store is not None and changes is not None:
            watch = StoreWatch(notify_path(store.path), lambda: changes.publish(store.revision()))
            watch.start()
            changes.publish(store.revision())
        api = LocalApi(home.agent_socket, follow, observe, reconcile, store, changes)
        task = asyncio.create_task(api.serve(stop))
        await api.ready.wait()
        ready.set()
        try:
            await task
        finally:
            if watch is not None:
                watch.close()
            if store is not None:
                store.close()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),))
    thread.start()
    ready.wait()
    try:
        yield
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join()
        loop.close()
