"""The supervisor keeps one runtime per Pool this device has material for and per
Member still joining; it retries a failing start with backoff on its own clock,
records the failure as an event, and stops runtimes whose objects go away."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from manifests import Member, Pool
from reconciler.context import DeviceContext
from reconciler.home import Home
from reconciler.node import init_node
from reconciler.pools import create_root
from reconciler.runtime.supervisor import RETRY, Supervisor
from reconciler.store import Store

FPR = "sha256:" + "ab" * 32


class FakeRuntime:
    """A runtime that records its life; ``fail`` makes start raise."""

    def __init__(self, obj: Pool | Member, fail: Exception | None = None) -> None:
        self.obj = obj
        self.generation = obj.metadata.generation
        self.fail = fail
        self.started = self.stopped = False

    async def start(self) -> None:
        self.started = True
        if self.fail is not None:
            raise self.fail

    async def stop(self) -> None:
        self.stopped = True


class Factory:
    """Builds fake runtimes; the first ``failures[name]`` starts of an object fail."""

    def __init__(self) -> None:
        self.built: list[FakeRuntime] = []
        self.failures: dict[str, int] = {}

    def __call__(self, ctx: DeviceContext, obj: Pool | Member) -> FakeRuntime:
        name = obj.metadata.name
        fail = None
        if self.failures.get(name, 0) > 0:
            self.failures[name] -= 1
            fail = RuntimeError(f"{name} will not start")
        runtime = FakeRuntime(obj, fail)
        self.built.append(runtime)
        return runtime

    def names(self) -> list[str]:
        return [r.obj.metadata.name for r in self.built]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _pool(name: str, admission: str | None = None) -> Pool:
    spec = {"admission": admission} if admission else {}
    return Pool.model_validate({"metadata": {"name": name}, "spec": spec})


def _member(name: str, pool: str, token_file: Path | None = None) -> Member:
    spec: dict[str, object] = {"pool": {"name": pool, "id": "pool-1", "rootFingerprint": FPR}}
    if token_file is not None:
        spec["tokenFile"] = str(token_file)
    return Member.model_validate({"metadata": {"name": name}, "spec": spec})


@pytest.fixture
def store(home: Home) -> Store:
    init_node(home, "net", "box")
    return Store.open(home.root)


def _supervisor(home: Home, store: Store) -> tuple[Supervisor, Factory, Clock]:
    factory, clock = Factory(), Clock()
    return Supervisor(home, store, clock=clock, build=factory), factory, clock


def test_one_runtime_per_pool_with_material_and_per_member_still_joining(
    home: Home, store: Store
) -> None:
    create_root(home, "p")
    store.apply(_pool("p"))
    store.apply(_pool("q"))  # no material on this device: nothing to run
    store.apply(_member("me", "elsewhere"))  # not joined yet: a join runtime
    store.apply(_member("peer", "p"))  # a Member of a pool we hold: nothing to join
    supervisor, factory, _ = _supervisor(home, store)

    asyncio.run(supervisor.sync())
    assert set(supervisor.running) == {("pool", "p"), ("join", "me")}
    assert all(r.started and not r.stopped for r in factory.built)
    asyncio.run(supervisor.sync())
    assert len(factory.built) == 2  # in step already: nothing restarted
    assert supervisor.next_retry() is None


def test_an_uninitialised_device_runs_nothing(tmp_path: Path) -> None:
    home = Home(tmp_path / "bare")
    with Store.open(home.root) as store:
        store.apply(_member("me", "elsewhere"))
        supervisor, factory, _ = _supervisor(home, store)
        asyncio.run(supervisor.sync())
        assert supervisor.running == {} and factory.built == []


def test_a_failing_start_is_retried_with_growing_backoff_and_recorded(
    home: Home, store: Store
) -> None:
    store.apply(_member("me", "elsewhere"))
    supervisor, factory, clock = _supervisor(home, store)
    factory.failures["me"] = 2
    start = clock.now

    asyncio.run(supervisor.sync())
    assert supervisor.running == {}
    assert factory.built[0].stopped  # a half-started runtime is cleaned up
    first_retry = supervisor.next_retry()
    assert first_retry == start + RETRY.delay(1)
    events = store.events("Member", "me")
    assert [(e.type, e.reason) for e in events] == [("Warning", "RuntimeFailed")]
    assert "me will not start" in events[0].message

    clock.now = first_retry - 0.01
    asyncio.run(supervisor.sync())
    assert len(factory.built) == 1  # not due yet

    clock.now = first_retry
    asyncio.run(supervisor.sync())
    assert len(factory.built) == 2 and supervisor.running == {}
    second_retry = supervisor.next_retry()
    assert second_retry is not None
    assert second_retry - first_retry > first_retry - start  # the wait grows
    assert len(store.events("Member", "me")) == 2

    clock.now = second_retry
    asyncio.run(supervisor.sync())
    assert set(supervisor.running) == {("join", "me")}
    assert supervisor.next_retry() is None  # success forgets the failures


def test_backoff_is_per_object(home: Home, store: Store) -> None:
    create_root(home, "p")
    store.apply(_pool("p"))
    store.apply(_member("me", "elsewhere"))
    supervisor, factory, _ = _supervisor(home, store)
    factory.failures["me"] = 5
    asyncio.run(supervisor.sync())
    assert set(supervisor.running) == {("pool", "p")}
    assert store.events("Pool", "p") == []


def test_deleted_objects_stop_and_changed_ones_restart(home: Home, store: Store) -> None:
    create_root(home, "p")
    store.apply(_pool("p"))
    store.apply(_member("me", "elsewhere"))
    supervisor, factory, _ = _supervisor(home, store)
    asyncio.run(supervisor.sync())
    old_pool, join = factory.built

    store.delete("Member", "me")
    store.apply(_pool("p", admission="auto"))  # a spec change: a new generation
    asyncio.run(supervisor.sync())
    assert join.stopped and old_pool.stopped
    assert set(supervisor.running) == {("pool", "p")}
    new_pool = supervisor.running[("pool", "p")]
    assert new_pool is factory.built[-1] and new_pool.generation == 2


def test_a_joined_member_hands_over_to_a_pool_runtime(home: Home, store: Store) -> None:
    store.apply(_member("me", "p"))
    supervisor, factory, _ = _supervisor(home, store)
    asyncio.run(supervisor.sync())
    assert set(supervisor.running) == {("join", "me")}
    join = factory.built[0]

    create_root(home, "p")  # the pool's material is on this device now
    store.apply(_pool("p"))
    asyncio.run(supervisor.sync())
    assert join.stopped
    assert set(supervisor.running) == {("pool", "p")}


def test_stop_all_stops_every_runtime_even_when_one_fails_to_stop(home: Home, store: Store) -> None:
    create_root(home, "p")
    store.apply(_pool("p"))
    store.apply(_member("me", "elsewhere"))
    supervisor, factory, _ = _supervisor(home, store)
    asyncio.run(supervisor.sync())

    async def broken_stop() -> None:
        raise OSError("socket already gone")

    factory.built[0].stop = broken_stop  # type: ignore[method-assign]
    asyncio.run(supervisor.stop_all())
    assert supervisor.running == {}
    assert factory.built[1].stopped


def test_the_default_builder_runs_a_join_runtime_and_reports_its_error(
    home: Home, store: Store, tmp_path: Path
) -> None:
    store.apply(_member("me", "elsewhere", token_file=tmp_path / "missing-token"))
    supervisor = Supervisor(home, store, clock=Clock())
    asyncio.run(supervisor.sync())
    assert supervisor.running == {}
    (event,) = store.events("Member", "me")
    assert event.reason == "RuntimeFailed" and "JoinError" in event.message
    assert "missing-token" in event.message


def test_a_failed_object_that_is_deleted_is_not_retried(home: Home, store: Store) -> None:
    """Otherwise next_retry stays in the past and the agent re-syncs every 50 ms forever."""
    store.apply(_member("me", "elsewhere"))
    supervisor, factory, clock = _supervisor(home, store)
    factory.failures["me"] = 1
    asyncio.run(supervisor.sync())
    assert supervisor.next_retry() is not None
    store.delete("Member", "me")
    asyncio.run(supervisor.sync())
    assert supervisor.next_retry() is None
    clock.now += 3600.0
    asyncio.run(supervisor.sync())
    assert len(factory.built) == 1


def test_a_changed_spec_is_tried_at_once_despite_backoff(home: Home, store: Store) -> None:
    store.apply(_member("me", "elsewhere"))
    supervisor, factory, _ = _supervisor(home, store)
    factory.failures["me"] = 3
    for _ in range(3):  # fail, and wait out nothing: the clock stands still
        asyncio.run(supervisor.sync())
    assert len(factory.built) == 1
    store.apply(_member("me", "fixed"))  # the user fixes the Member: a new generation
    asyncio.run(supervisor.sync())
    assert len(factory.built) == 2 and factory.built[-1].generation == 2
