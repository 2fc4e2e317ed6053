"""Finished Jobs stamp ``completionTime`` and, with ``ttlSecondsAfterFinished``, are
deleted once it has passed (the OpenAI API's jobs get one, so requests do not pile up)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from manifests import Job
from reconciler.controllers import job as job_controller
from reconciler.executor import Executor
from reconciler.handlers import build_handlers
from reconciler.home import Home
from reconciler.store import Store

T0 = 1_800_000_000.0  # the fake clock's start


def _job(ttl: int | None, phase: str = "Succeeded", completed: str | None = None) -> Job:
    spec = {"pool": "p", "prompt": "hi"} | ({} if ttl is None else {"ttlSecondsAfterFinished": ttl})
    status = {"phase": phase} | ({} if completed is None else {"completionTime": completed})
    return Job.model_validate({"metadata": {"name": "j"}, "spec": spec, "status": status})


SEEN = job_controller.JobObserved(pool_exists=True, pool_ready=True, model_problem=None,
                                  ring_converged=True, wall_clock=T0)  # fmt: skip
LOOP = 50.0  # the executor's clock (the event loop's): unrelated to the wall clock


def _at(wall: float) -> job_controller.JobObserved:
    return replace(SEEN, wall_clock=wall)


def test_a_finished_job_is_stamped_once_and_deleted_after_its_ttl() -> None:
    first = job_controller.plan(_job(60), SEEN, LOOP)
    stamp = first.status["completionTime"]
    assert datetime.fromisoformat(stamp) == datetime.fromtimestamp(T0, UTC)
    assert first.requeue_after == 60 and not first.actions
    later = job_controller.plan(_job(60, completed=stamp), _at(T0 + 45), LOOP)
    assert "completionTime" not in later.status and later.requeue_after == 15
    gone = job_controller.plan(_job(60, "Failed", completed=stamp), _at(T0 + 60), LOOP)
    assert gone.actions == [job_controller.DeleteJob("j")]


def test_without_a_ttl_a_finished_job_stays() -> None:
    plan = job_controller.plan(_job(None, completed="2027-01-15T08:00:00Z"), _at(T0 + 1e9), LOOP)
    assert not plan.actions and plan.requeue_after is None


def test_a_running_job_is_never_deleted_by_its_ttl() -> None:
    plan = job_controller.plan(_job(0, "Running"), replace(SEEN, running=True), LOOP)
    assert plan.actions == [] and "completionTime" not in plan.status


def test_the_executor_deletes_a_settled_job_when_its_ttl_passes(tmp_path: Path) -> None:
    """The executor runs on the loop's clock; the stamp and the TTL on the wall clock."""
    store = Store.open(tmp_path)
    store.apply(_job(30))
    store.update_status("Job", "j", {"phase": "Succeeded", "completionTokens": 3},
                        store.require("Job", "j").metadata.resource_version)  # fmt: skip
    wall = [T0]
    handlers = build_handlers(Home(tmp_path / "home"), store, wall_clock=lambda: wall[0])
    executor = Executor(store, handlers)
    deadline = executor.reconcile_all(LOOP)
    done = store.require("Job", "j")
    assert isinstance(done, Job) and done.status.completion_time is not None
    assert datetime.fromisoformat(done.status.completion_time).timestamp() == T0
    assert deadline == LOOP + 30
    wall[0] = T0 + 29
    executor.reconcile_all(LOOP + 29)  # settled: nothing to do yet
    assert store.get("Job", "j") is not None
    wall[0] = T0 + 30
    executor.reconcile_all(LOOP + 30)
    assert store.get("Job", "j") is None
    assert any(e.reason == "Deleted" for e in store.events("Job", "j"))
    assert executor.reconcile_all(LOOP + 31) is None  # nothing left to wake up for
