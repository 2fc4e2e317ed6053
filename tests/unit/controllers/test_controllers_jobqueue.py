"""Waiting jobs: fair across clients (round-robin), FIFO within a client; the Job
controller queues, starts, and cancels by the annotation."""

from __future__ import annotations

from dataclasses import replace

from manifests import Job
from reconciler.controllers import job
from reconciler.controllers.jobqueue import Waiting, fair_order, jobs_ahead

JOB = Job.model_validate({"metadata": {"name": "j"}, "spec": {"pool": "p", "prompt": "Hi"}})
READY = job.JobObserved(pool_exists=True, pool_ready=True, model_problem=None,
                        ring_converged=True, runner_available=True)  # fmt: skip


def w(name: str, client: str, t: int) -> Waiting:
    return Waiting(name, client, f"2026-01-01T00:00:{t:02d}Z")


def test_one_greedy_client_does_not_starve_another() -> None:
    waiting = [w(f"a{i}", "alice", i) for i in range(5)] + [w("b0", "bob", 10)]
    assert fair_order(waiting) == ["a0", "b0", "a1", "a2", "a3", "a4"]


def test_fifo_within_a_client_whatever_the_listing_order() -> None:
    waiting = [w("late", "alice", 30), w("early", "alice", 1), w("mid", "alice", 9)]
    assert fair_order(waiting) == ["early", "mid", "late"]


def test_the_client_served_least_recently_goes_first() -> None:
    # alice's first job just finished; her next one is older than bob's, yet bob goes first
    waiting = [w("a2", "alice", 1), w("a3", "alice", 2), w("b1", "bob", 3)]
    assert fair_order(waiting, {"alice": 100.0}) == ["b1", "a2", "a3"]
    # once bob was served after alice, alice's turn comes again
    assert fair_order(waiting, {"alice": 100.0, "bob": 200.0}) == ["a2", "b1", "a3"]


def test_two_busy_clients_take_turns() -> None:
    waiting = [w(f"a{i}", "alice", i) for i in range(3)] + [
        w(f"b{i}", "bob", 10 + i) for i in range(3)
    ]
    assert fair_order(waiting, {"alice": 5.0, "bob": 1.0}) == ["b0", "a0", "b1", "a1", "b2", "a2"]


def test_jobs_ahead_counts_the_busy_slot() -> None:
    waiting = [w("a", "x", 1), w("b", "y", 2), w("c", "z", 3)]
    assert [jobs_ahead(n, waiting) for n in "abc"] == [0, 1, 2]
    assert [jobs_ahead(n, waiting, running=1) for n in "abc"] == [1, 2, 3]
    assert [jobs_ahead(n, waiting, slots=2) for n in "abc"] == [0, 0, 1]
    assert jobs_ahead("unknown", waiting) == 0


def test_controller_queues_a_job_behind_others() -> None:
    plan = job.plan(JOB, replace(READY, jobs_ahead=2), 0.0)
    assert plan.actions == [] and plan.status["phase"] == "Pending"
    assert plan.conditions[0].reason == "Queued" and "2 job(s)" in plan.conditions[0].message
    assert job.plan(JOB, READY, 0.0).actions == [job.StartJob("j")]


def test_cancel_stops_a_running_job_and_fails_a_waiting_one() -> None:
    running = JOB.model_copy(deep=True)
    running.status.phase = "Running"
    observed = replace(READY, running=True, cancel_requested="client went away")
    assert job.plan(running, observed, 0.0).actions == [job.CancelJob("j", "client went away")]
    waiting = job.plan(JOB, replace(READY, cancel_requested="client went away"), 0.0)
    assert waiting.actions == [] and waiting.status["phase"] == "Failed"
    assert waiting.status["failureReason"] == "Cancelled"
    # after the runner stopped it, the cancellation (not "Interrupted") is what is recorded
    stopped = job.plan(running, replace(READY, cancel_requested="gone"), 0.0)
    assert stopped.status["failureReason"] == "Cancelled"
