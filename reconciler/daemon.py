"""The agent: one process per device that reconciles the store toward its manifests.

uvloop is chosen here and nowhere else. Root tasks run in one TaskGroup; SIGINT and
SIGTERM set a stop event and every task returns.

Nothing polls the store: a write of this agent's connection calls its listener, a write
by another process pings the notify socket (storenotify.py); either wakes the executor
and the supervisor when the store's revision moved. Volatile observed state (last seen,
counters, tokens as they stream) does not move it. A slow ``data_version`` check
catches writers that do not ping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.executor import Executor
from reconciler.gitops import FolderSync, watch_folder
from reconciler.handlers import build_handlers
from reconciler.home import Home, HomeError, make_private, write_atomic
from reconciler.localapi import LocalApi, LocalApiError
from reconciler.logsetup import setup_logging
from reconciler.runtime.agentjobs import AgentJobs
from reconciler.runtime.jobrunner import JobRunner
from reconciler.runtime.supervisor import Supervisor
from reconciler.shutdown import quiet_cancellations
from reconciler.singleton import AlreadyRunning, PidLock
from reconciler.store import Store, StoreError
from reconciler.storenotify import FALLBACK_SECONDS, ChangeHub, StoreWatch, notify_path

log = logging.getLogger("meshnet.agent")

RESYNC_SECONDS = 30.0
SLOW_STOP_SECONDS = 5.0
API_PORT_FILE = "api.port"


@dataclass
class AgentOptions:
    """How the agent was asked to run."""

    home: Home
    watch_dir: Path | None = None
    log_level: str = "INFO"
    api_port: int | None = None  # serve the OpenAI-compatible API (0: any free port)
    api_host: str = "127.0.0.1"


class Agent:
    """The agent's root tasks around one store and one executor."""

    def __init__(self, options: AgentOptions, store: Store) -> None:
        self.options = options
        self.store = store
        self.supervisor = Supervisor(options.home, store)
        self.runner = JobRunner(store)
        jobs = AgentJobs(store, self.supervisor, self.runner)
        self.executor = Executor(store, build_handlers(options.home, store, jobs))
        self.stop = asyncio.Event()
        self.wake = asyncio.Event()
        self.sync = FolderSync(store, options.watch_dir) if options.watch_dir else None
        self.supervise = asyncio.Event()
        self.changes = ChangeHub()  # the local API's streams wait on it
        self._revision = -1  # the store's revision when the executor was last woken

    def _store_changed(self) -> None:
        """Something wrote to the store: wake the executor and the supervisor if the
        revision moved."""
        current = self.store.revision()
        if current != self._revision:
            self._revision = current
            self.wake.set()
            self.supervise.set()
            self.changes.publish(current)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(quiet_cancellations)
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self._on_signal, signum)
        tasks: list[Callable[[], Coroutine[Any, Any, None]]] = [
            self._watch_store,
            self._reconcile_loop,
            self._supervise_loop,
            self._serve_local_api,
        ]
        if self.sync is not None:
            tasks.append(self._watch_folder)
        if self.options.api_port is not None:
            tasks.append(self._serve_api)
        log.info(
            "agent started for %s (pid file %s)",
            self.options.home.root,
            self.options.home.agent_lock,
        )
        async with asyncio.TaskGroup() as group:
            for task in tasks:
                group.create_task(task(), name=task.__name__)
        log.info("agent stopped")

    def _on_signal(self, signum: int) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        self.stop.set()
        self.wake.set()
        self.supervise.set()
        asyncio.get_running_loop().call_later(SLOW_STOP_SECONDS, _report_slow_stop)

    async def _watch_store(self) -> None:
        watch = StoreWatch(notify_path(self.store.path), self._store_changed)
        try:
            watch.start()
        except OSError as err:
            log.warning("no store notifications (%s): other writers are seen within %.0f s",
                        err, FALLBACK_SECONDS)  # fmt: skip
        unsubscribe = self.store.on_change(self._store_changed)
        version = self.store.data_version()
        self._store_changed()
        try:
            while not self.stop.is_set():
                await _wait(self.stop, FALLBACK_SECONDS)
                current = self.store.data_version()
                if current != version:  # another connection wrote (and maybe did not ping)
                    version = current
                    self._store_changed()
        finally:
            unsubscribe()
            watch.close()

    async def _reconcile_loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_resync = loop.time() + RESYNC_SECONDS
        while not self.stop.is_set():
            self.wake.clear()
            deadline = self.executor.reconcile_all(loop.time())
            if loop.time() >= next_resync:
                next_resync = loop.time() + RESYNC_SECONDS
                if self.sync is not None:
                    self.sync.sync_all()
            until = min(d for d in (deadline, next_resync) if d is not None)
            await _wait(self.wake, max(0.0, until - loop.time()))

    async def _supervise_loop(self) -> None:
        try:
            while not self.stop.is_set():
                self.supervise.clear()
                try:
                    await self.supervisor.sync()
                except Exception:
                    log.exception("supervising the runtimes failed")
                retry = self.supervisor.next_retry()
                timeout = RESYNC_SECONDS if retry is None else max(0.05, retry - time.monotonic())
                await _wait(self.supervise, min(timeout, RESYNC_SECONDS))
        finally:
            await self.runner.close()
            await self.supervisor.stop_all()

    async def _serve_local_api(self) -> None:
        api = LocalApi(self.options.home.agent_socket, self.runner.follow, self.supervisor.live,
                       reconcile=self._reconcile_one, store=self.store,
                       changes=self.changes)  # fmt: skip
        try:
            await api.serve(self.stop)
        except (LocalApiError, OSError) as err:
            log.error("local API not served (the CLI falls back to the store): %s", err)

    def _reconcile_one(self, kind: str, name: str) -> None:
        """One reconcile of one object now, for the local API (`mesh pool-create`)."""
        obj = self.store.get(kind, name)
        if obj is not None:
            self.executor.reconcile(self.executor.handlers[kind], obj, time.monotonic())

    async def _serve_api(self) -> None:
        from reconciler.controlplane.apiserver import ApiServer

        server = ApiServer(self.options.home, self.options.api_host, self.options.api_port or 0)
        try:
            sock = server.bind()
        except OSError as err:
            log.error("OpenAI API not started on %s:%s: %s", server.host, server.port, err)
            return
        write_atomic(self.options.home.root / API_PORT_FILE, f"{server.port}\n".encode())
        log.info("OpenAI-compatible API on http://%s:%d/v1", server.host, server.port)
        await server.serve(sock, self.stop)

    async def _watch_folder(self) -> None:
        assert self.sync is not None
        await watch_folder(self.sync, self.stop)


def _report_slow_stop() -> None:
    """Stopping takes long: say which tasks are still running, and where."""
    for task in asyncio.all_tasks():
        frames = task.get_stack(limit=3)
        where = " <- ".join(f"{f.f_code.co_name}:{f.f_lineno}" for f in frames) or "?"
        log.warning("still stopping: task %s at %s", task.get_name(), where)


async def _wait(event: asyncio.Event, timeout: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout)


def _event_loop_runner() -> Callable[[Coroutine[Any, Any, None]], None]:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; Windows lacks it
        return asyncio.run
    return uvloop.run


def run_agent(options: AgentOptions) -> int:
    """Run the agent in the foreground until a signal; the process exit code."""
    home = options.home
    try:
        make_private(home.root)  # 0700 on every start (state.db holds token keys)
    except HomeError as err:
        print(f"error: {err}", flush=True)
        return 1
    lock = PidLock(home.agent_lock)
    try:
        lock.acquire()
    except AlreadyRunning as err:
        print(f"error: {err}", flush=True)
        return 1
    setup_logging(home, "agent", options.log_level)
    try:
        with Store.open(home.root, ping_agent=False) as store:
            _event_loop_runner()(Agent(options, store).run())
    except StoreError as err:
        log.error("%s", err)
        return 1
    finally:
        lock.release()
    return 0
