"""The Job controller: a Job applied on this device is coordinated by this agent.

It waits (phase Pending, with the reason) until the pool is Ready, the model is here
and the ring has converged, then starts the job once; the runner fills the status as
the job goes. A job found Scheduled or Running that this agent is not running was
interrupted (the agent restarted): it is Failed, not run twice.

A prompt that cannot fit (prompt + maxTokens beyond the model's context, or beyond a
job frame limit: ``reconciler.jobs.limits``) is refused by the job service before any
member is offered the job or loads anything: phase Failed, reason PromptTooLong, and
Stalled (the spec itself must change; apply the Job anew). The check needs the model's
tokenizer, so it runs in the runner's thread, never in the agent's reconcile loop.

Jobs of one pool wait their turn (phase Pending, reason Queued) in the fair order of
jobqueue.py. A Job annotated ``meshnet.dev/cancel`` (a client that went away) is stopped
if it runs, and fails with reason Cancelled either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar

from manifests import Job
from manifests.job import JobStatus
from reconciler.controllers.base import Action, ConditionSpec, Plan, not_ready, ready
from reconciler.jobs.errors import Reason


@dataclass(frozen=True)
class StartJob(Action):
    """Hand the job to the runner (coordinator on this device)."""

    name: str
    event_reason: ClassVar[str] = "Started"


@dataclass(frozen=True)
class CancelJob(Action):
    """Stop the job this agent runs (its client asked, or went away)."""

    name: str
    reason: str
    event_reason: ClassVar[str] = "Cancelled"


@dataclass(frozen=True)
class DeleteJob(Action):
    """Delete a finished Job whose ``ttlSecondsAfterFinished`` has passed."""

    name: str
    event_reason: ClassVar[str] = "Deleted"


@dataclass(frozen=True)
class JobObserved:
    """What the executor saw of the world for one Job."""

    pool_exists: bool
    pool_ready: bool
    model_problem: str | None
    ring_converged: bool
    runner_available: bool = False
    running: bool = False
    cancel_requested: str | None = None  # the reason, from the cancel annotation
    jobs_ahead: int = 0  # jobs that start before this one (jobqueue.py)
    deleted: bool = False  # gone from the store (a DeleteJob was performed)
    wall_clock: float = 0.0  # seconds since the epoch (``now`` is the loop's clock)


def plan(job: Job, observed: JobObserved, now: float) -> Plan:
    """What to do for a Job, given what was observed."""
    phase = job.status.phase
    if observed.deleted:
        return Plan()
    if phase in ("Succeeded", "Failed"):
        return _finished(job, observed.wall_clock)
    if observed.cancel_requested is not None:
        return _cancel(job, observed)
    if phase in ("Scheduled", "Running") and not observed.running:
        message = "the agent stopped while the job ran; apply the Job again to rerun it"
        status = JobStatus.patch(
            phase="Failed", failure_reason="Interrupted", failure_message=message
        )
        return Plan(status=status, conditions=[not_ready("Interrupted", message)])
    if observed.running:
        return Plan(conditions=[ConditionSpec("Ready", "False", "Running", "generating")])
    waiting = _waiting(job, observed)
    if waiting is not None:
        return waiting
    return Plan(actions=[StartJob(job.metadata.name)])


def _waiting(job: Job, observed: JobObserved) -> Plan | None:
    pool = job.spec.pool
    if not observed.pool_exists:
        return _pending("PoolNotFound", f"no Pool named {pool!r} on this device")
    if not observed.pool_ready:
        return _pending("PoolNotReady", f"Pool {pool!r} is not Ready yet")
    if observed.model_problem:
        return _pending("ModelUnavailable", observed.model_problem)
    if not observed.runner_available:
        return _pending("NoAgent", "jobs run in the agent: start it with `mesh start`")
    if not observed.ring_converged:
        return _pending("RingNotConverged", f"waiting for the ring of pool {pool!r} to converge")
    if observed.jobs_ahead > 0:
        return _pending("Queued", f"{observed.jobs_ahead} job(s) of pool {pool!r} go first")
    return None


def _cancel(job: Job, observed: JobObserved) -> Plan:
    reason = observed.cancel_requested or "cancelled"
    if observed.running:
        return Plan(actions=[CancelJob(job.metadata.name, reason)])
    message = f"cancelled: {reason}"
    status = JobStatus.patch(phase="Failed", failure_reason="Cancelled", failure_message=message)
    return Plan(status=status, conditions=[not_ready("Cancelled", message)])


def _finished(job: Job, now: float) -> Plan:
    """The final status, once ``completionTime`` is stamped; past the Job's
    ``ttlSecondsAfterFinished``, its deletion. ``now`` is wall-clock time (the stamp is
    one), and ``requeue_after`` a duration, good on the executor's clock too."""
    stamped = job.status.completion_time
    finished_at = now if stamped is None else _epoch(stamped)
    ttl = job.spec.ttl_seconds_after_finished
    if ttl is not None and now >= finished_at + ttl:
        return Plan(actions=[DeleteJob(job.metadata.name)])
    plan = _final_status(job)
    if stamped is None:
        moment = datetime.fromtimestamp(round(now, 3), UTC)
        plan.status["completionTime"] = moment.isoformat().replace("+00:00", "Z")
    if ttl is not None:
        plan.requeue_after = finished_at + ttl - now
    return plan


def _epoch(stamp: str) -> float:
    """Seconds since the epoch of an RFC 3339 time (a bad one never expires)."""
    try:
        return datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return float("inf")


def _final_status(job: Job) -> Plan:
    if job.status.phase == "Succeeded":
        tokens = job.status.completion_tokens or 0
        return Plan(
            status={"phase": "Succeeded"}, conditions=[ready("Succeeded", f"{tokens} tokens")]
        )
    reason = job.status.failure_reason or "Failed"
    message = job.status.failure_message or "the job failed"
    if reason in REFUSALS:
        return _refused(reason, message)
    return Plan(status={"phase": "Failed"}, conditions=[not_ready(reason, message)])


REFUSALS = (Reason.PROMPT_TOO_LONG,)  # failures of the spec itself: the Job is Stalled


def _refused(reason: str, message: str) -> Plan:
    status = JobStatus.patch(phase="Failed", failure_reason=reason, failure_message=message)
    stalled = ConditionSpec("Stalled", "True", reason, message)
    return Plan(status=status, conditions=[not_ready(reason, message), stalled])


def _pending(reason: str, message: str) -> Plan:
    return Plan(
        status={"phase": "Pending"}, conditions=[not_ready(reason, message)], requeue_after=10
    )
