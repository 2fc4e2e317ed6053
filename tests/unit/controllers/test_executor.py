"""The executor: actions, status writes, conditions, backoff, permanent errors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from manifests import Pool
from reconciler.controllers.base import Action, PermanentError, Plan, TemporaryError, ready
from reconciler.executor import Executor, KindHandler
from reconciler.store import Store


@dataclass(frozen=True)
class Touch(Action):
    pass


class World:
    def __init__(self) -> None:
        self.touched = False
        self.failures: list[Exception] = []

    def observe(self, obj: Pool) -> bool:
        return self.touched

    def plan(self, obj: Pool, touched: bool, now: float) -> Plan:
        if not touched:
            return Plan(actions=[Touch()])
        return Plan(status={"poolId": "pool-x"}, conditions=[ready("Touched", "done")])

    def touch(self, action: Touch) -> str:
        if self.failures:
            raise self.failures.pop(0)
        self.touched = True
        return "touched it"


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Store, World, Executor]:
    store = Store.open(tmp_path)
    store.apply(Pool.model_validate({"metadata": {"name": "p"}}))
    world = World()
    handler = KindHandler("Pool", world.observe, world.plan, {Touch: world.touch})
    return store, world, Executor(store, [handler])


def _pool(store: Store) -> Pool:
    obj = store.require("Pool", "p")
    assert isinstance(obj, Pool)
    return obj


def test_action_then_status_and_events(setup: tuple[Store, World, Executor]) -> None:
    store, _world, executor = setup
    assert executor.reconcile_all(0.0) is None
    obj = _pool(store)
    assert obj.status.pool_id == "pool-x"
    assert obj.status.observed_generation == 1
    ready_condition = obj.status.condition("Ready")
    assert ready_condition is not None and ready_condition.status == "True"
    assert [e.reason for e in store.events("Pool", "p")] == ["Touch", "Touched"]


def test_second_pass_writes_nothing(setup: tuple[Store, World, Executor]) -> None:
    store, _, executor = setup
    executor.reconcile_all(0.0)
    revision = store.revision()
    executor.reconcile_all(1.0)
    assert store.revision() == revision


def test_temporary_error_backs_off_then_recovers(setup: tuple[Store, World, Executor]) -> None:
    store, world, executor = setup
    world.failures = [TemporaryError("Busy", "try later"), TemporaryError("Busy", "try later")]
    assert executor.reconcile_all(0.0) == pytest.approx(0.5)
    obj = _pool(store)
    reconciling = obj.status.condition("Reconciling")
    assert reconciling is not None and reconciling.reason == "Busy"
    executor.reconcile_all(0.1)  # not due yet: no attempt
    assert len(world.failures) == 1
    assert executor.reconcile_all(0.5) == pytest.approx(1.5)  # second failure doubles
    assert executor.reconcile_all(1.5) is None
    obj = _pool(store)
    assert obj.status.condition("Reconciling") is None
    assert obj.status.pool_id == "pool-x"


def test_permanent_error_stalls_until_spec_changes(setup: tuple[Store, World, Executor]) -> None:
    store, world, executor = setup
    world.failures = [PermanentError("BadSpec", "cannot work with this")]
    executor.reconcile_all(0.0)
    stalled = _pool(store).status.condition("Stalled")
    assert stalled is not None and stalled.message == "cannot work with this"
    executor.reconcile_all(1000.0)
    assert not world.touched
    store.apply(Pool.model_validate({"metadata": {"name": "p"}, "spec": {"admission": "auto"}}))
    executor.reconcile_all(1000.0)
    assert world.touched and _pool(store).status.condition("Stalled") is None


def test_unexpected_exception_becomes_a_condition(setup: tuple[Store, World, Executor]) -> None:
    store, world, executor = setup
    world.failures = [RuntimeError("disk on fire")]
    executor.reconcile_all(0.0)
    condition = _pool(store).status.condition("Ready")
    assert condition is not None and condition.reason == "InternalError"
    assert "disk on fire" in condition.message


def test_a_settled_object_is_looked_at_again_only_when_it_changes(tmp_path: Path) -> None:
    """Finished objects (ended Jobs pile up) cost nothing per pass until they change."""
    store = Store.open(tmp_path)
    store.apply(Pool.model_validate({"metadata": {"name": "p"}}))
    world = World()
    observed: list[str] = []

    def observe(obj: Pool) -> bool:
        observed.append(obj.metadata.name)
        return world.observe(obj)

    settled = KindHandler("Pool", observe, world.plan, {Touch: world.touch},
                          settled=lambda obj: obj.status.pool_id is not None)  # fmt: skip
    executor = Executor(store, [settled])
    executor.reconcile_all(0.0)  # acts, then writes the status that settles it
    seen = len(observed)
    for now in (1.0, 2.0, 3.0):
        executor.reconcile_all(now)
    assert len(observed) == seen  # unchanged: not observed again
    pool = _pool(store)
    pool.metadata.labels["changed"] = "yes"
    store.apply(pool)
    executor.reconcile_all(4.0)
    assert len(observed) == seen + 1  # changed: reconciled once more
    executor.reconcile_all(5.0)
    assert len(observed) == seen + 1
