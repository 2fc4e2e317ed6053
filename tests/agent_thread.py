"""The agent's local API served from a thread with an event loop of its own, for CLI
tests: the CLI under test runs in the test's thread, as it would in its own process."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from reconciler.home import Home
from reconciler.localapi import LocalApi, Observe, Reconcile
from reconciler.runtime.jobfeed import Follower


@contextmanager
def local_api_thread(
    home: Home,
    follow: Callable[[str], Follower],
    observe: Observe | None = None,
    reconcile: Reconcile | None = None,
) -> Iterator[None]:
    """Serve ``home``'s agent socket until the block ends (``follow`` and ``observe``
    are called on the API's loop, so they may use ``asyncio.get_running_loop()``)."""
    loop, ready, stop = asyncio.new_event_loop(), threading.Event(), asyncio.Event()

    async def serve() -> None:
        api = LocalApi(home.agent_socket, follow, observe, reconcile)
        task = asyncio.create_task(api.serve(stop))
        await api.ready.wait()
        ready.set()
        await task

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),))
    thread.start()
    ready.wait()
    try:
        yield
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join()
        loop.close()
