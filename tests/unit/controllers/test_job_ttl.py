"""Finished Jobs stamp ``completionTime`` and, with ``ttlSecondsAfterFinished``, are
deleted once it has passed (the OpenAI API's jobs get one, so requests do not pile up)."""

from __future__ import annotations

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
                                  ring_converged=True)  # fmt: skip


def test_a_finished_job_is_stamped_once_and_deleted_after_its_ttl() -> None:
    first = job_controller.plan(_job(60), SEEN, T0)
    stamp = first.status["completionTime"]
    assert datetime.fromisoformat(stamp) == datetime.fromtimestamp(T0, UTC)
    assert first.requeue_after == 60 and not first.actions
    later = job_controller.plan(_job(60, completed=stamp), SEEN, T0 + 45)
    assert "completionTime" not in later.status and later.requeue_after == 15
    gone = job_controller.plan(_job(60, "Failed", completed=stamp), SEEN, T0 + 60)
    assert gone.actions == [job_controller.DeleteJob("j")]


def test_without_a_ttl_a_finished_job_stays() -> None:
    plan = job_controller.plan(_job(None, completed="2027-01-15T08:00:00Z"), SEEN, T0 + 1e9)
    assert not plan.actions and plan.requeue_after is None


def test_a_running_job_is_never_deleted_by_its_ttl() -> None:
    running = SEEN.__class__(**{**SEEN.__dict__, "running": True})
    plan = job_controller.plan(_job(0, "Running"), running, T0)
    assert plan.actions == [] and "completionTime" not in plan.status


def test_the_executor_deletes_a_settled_job_when_its_ttl_passes(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    store.apply(_job(30))
    store.update_status("Job", "j", {"phase": "Succeeded", "completionTokens": 3},
                        store.require("Job", "j").metadata.resource_version)  # fmt: skip
    executor = Executor(store, build_handlers(Home(tmp_path / "home"), store))
    deadline = executor.reconcile_all(T0)
    done = store.require("Job", "j")
    assert isinstance(done, Job) and done.status.completion_time is not None
    assert deadline == T0 + 30
    executor.reconcile_all(T0 + 29)  # settled: nothing to do yet
    assert store.get("Job", "j") is not None
    executor.reconcile_all(T0 + 30)
    assert store.get("Job", "j") is None
    assert any(e.reason == "Deleted" for e in store.events("Job", "j"))
    assert executor.reconcile_all(T0 + 31) is None  # nothing left to wake up for
