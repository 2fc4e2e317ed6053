"""Decides which runtimes run on this device and keeps them in step with the store.

- a Pool this device has material for (admin or member) -> a PoolRuntime;
- a Member of this device whose pool it has no material for yet -> a JoinRuntime.

A runtime whose object changed generation is restarted; one that fails to start is
retried with backoff and the failure is recorded as an event. The backoff is forgotten
when the object is deleted (nothing left to retry) or its spec changes (tried at once).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

from manifests import Member, Pool
from manifests.pool import DiscoverySpec
from reconciler.backoff import BackoffPolicy
from reconciler.context import DeviceContext
from reconciler.home import Home
from reconciler.node import NodeError, load_identity, load_node_config
from reconciler.pools import read_pool_info
from reconciler.runtime.joinruntime import JoinRuntime
from reconciler.runtime.poolruntime import PoolRuntime
from reconciler.store import Store

log = logging.getLogger("meshnet.supervisor")

RETRY = BackoffPolicy(1.0, 30.0)


class Runtime(Protocol):
    generation: int | None

    async def start(self) -> None: ...
    async def stop(self) -> None: ...


Key = tuple[str, str]
Builder = Callable[[DeviceContext, Pool | Member], Runtime]


class Failure(NamedTuple):
    """Consecutive failed starts of one object's runtime, at one generation."""

    times: int
    retry_at: float
    generation: int | None


class Supervisor:
    """The runtimes of one agent."""

    def __init__(
        self,
        home: Home,
        store: Store,
        clock: Callable[[], float] = time.monotonic,
        build: Builder | None = None,
    ) -> None:
        """``clock`` times the retries; ``build`` makes a runtime (default: a
        PoolRuntime for a Pool, a JoinRuntime for a Member). Both are seams for tests."""
        self.home, self.store = home, store
        self._clock = clock
        self._builder: Builder = build or self._build
        self.ctx: DeviceContext | None = None
        self.running: dict[Key, Runtime] = {}
        self._failures: dict[Key, Failure] = {}

    def pool_runtime(self, pool_name: str) -> PoolRuntime | None:
        runtime = self.running.get(("pool", pool_name))
        return runtime if isinstance(runtime, PoolRuntime) else None

    def live(self, what: str, pool: str | None = None) -> list[dict[str, Any]]:
        """``peers`` or ``ring`` of the running pools (or of ``pool``) as of now, each
        item naming its pool: what `meshctl get peers|ring` lists."""
        items: list[dict[str, Any]] = []
        for kind, name in sorted(self.running):
            runtime = self.pool_runtime(name) if kind == "pool" else None
            if runtime is None or pool not in (None, name):
                continue
            value = runtime.live(what)
            if what == "peers":
                items.extend({"pool": name, **row} for row in value)
            elif value is not None:
                items.append({"pool": name, **value})
        return items

    def _context(self) -> DeviceContext | None:
        if self.ctx is None:
            try:
                node, identity = load_node_config(self.home), load_identity(self.home)
            except NodeError:
                return None
            self.ctx = DeviceContext(self.home, self.store, identity, node)
        return self.ctx

    def desired(self, ctx: DeviceContext) -> dict[Key, Pool | Member]:
        wanted: dict[Key, Pool | Member] = {}
        for pool in self.store.list("Pool"):
            assert isinstance(pool, Pool)
            if read_pool_info(self.home, pool.metadata.name) is not None:
                wanted[("pool", pool.metadata.name)] = pool
        for member in self.store.list("Member"):
            assert isinstance(member, Member)
            if read_pool_info(self.home, member.spec.pool.name) is None:
                wanted[("join", member.metadata.name)] = member
        return wanted

    async def sync(self) -> None:
        """Start, restart, stop and refresh runtimes to match the store."""
        ctx = self._context()
        if ctx is None:
            return
        wanted = self.desired(ctx)
        self._forget_failures(wanted)
        for key, runtime in list(self.running.items()):
            obj = wanted.get(key)
            renewed = isinstance(runtime, PoolRuntime) and runtime.renewed
            if obj is None or obj.metadata.generation != runtime.generation or renewed:
                await self._stop(key)
        for key, obj in wanted.items():
            if key not in self.running and self._due(key):
                await self._start(ctx, key, obj)
        for runtime in self.running.values():
            if isinstance(runtime, PoolRuntime):
                runtime.refresh()

    def _build(self, ctx: DeviceContext, obj: Pool | Member) -> Runtime:
        if isinstance(obj, Pool):
            info = read_pool_info(self.home, obj.metadata.name)
            assert info is not None
            return PoolRuntime(ctx, obj, info)
        return JoinRuntime(ctx, obj, DiscoverySpec())

    async def _start(self, ctx: DeviceContext, key: Key, obj: Pool | Member) -> None:
        runtime = self._builder(ctx, obj)
        try:
            await runtime.start()
        except Exception as err:
            await _quietly_stop(runtime)
            previous = self._failures.get(key)
            failures = (previous.times if previous else 0) + 1
            delay = RETRY.delay(failures)
            generation = obj.metadata.generation
            self._failures[key] = Failure(failures, self._clock() + delay, generation)
            message = f"cannot start: {type(err).__name__}: {err} (retrying in {delay:.0f}s)"
            log.warning("%s %s %s", key[0], key[1], message)
            kind = "Pool" if key[0] == "pool" else "Member"
            self.store.record_event(kind, key[1], "Warning", "RuntimeFailed", message)
            return
        self._failures.pop(key, None)
        self.running[key] = runtime

    def _due(self, key: Key) -> bool:
        failure = self._failures.get(key)
        return failure is None or self._clock() >= failure.retry_at

    def _forget_failures(self, wanted: dict[Key, Pool | Member]) -> None:
        """Failures of objects that went away, or whose spec changed (try it at once)."""
        for key, failure in list(self._failures.items()):
            obj = wanted.get(key)
            if obj is None or obj.metadata.generation != failure.generation:
                del self._failures[key]

    def next_retry(self) -> float | None:
        """When the earliest failed start is due again (None: nothing to retry)."""
        return min((f.retry_at for f in self._failures.values()), default=None)

    async def _stop(self, key: Key) -> None:
        runtime = self.running.pop(key)
        await _quietly_stop(runtime)

    async def stop_all(self) -> None:
        """Stop every runtime at once (each leaves its pool gracefully)."""
        await asyncio.gather(*(self._stop(key) for key in list(self.running)))


async def _quietly_stop(runtime: Runtime) -> None:
    try:
        await runtime.stop()
    except Exception:
        log.exception("stopping a runtime failed")
