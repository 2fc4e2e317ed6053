"""The Job controller: accept a Job, check what it needs, and (once the inference
engine and ring are available) schedule it. A Job it cannot run stays Pending with a
condition that says why."""

from __future__ import annotations

from dataclasses import dataclass

from manifests import Job
from reconciler.controllers.base import Plan, not_ready


@dataclass(frozen=True)
class JobObserved:
    """What the executor saw of the world for one Job."""

    pool_exists: bool
    pool_ready: bool
    model_problem: str | None
    ring_converged: bool


def plan(job: Job, observed: JobObserved, now: float) -> Plan:
    """What to do for a Job, given what was observed."""
    if job.status.phase in ("Succeeded", "Failed"):
        return Plan(status={"phase": job.status.phase})
    pool = job.spec.pool
    if not observed.pool_exists:
        return _pending("PoolNotFound", f"no Pool named {pool!r} on this device")
    if not observed.pool_ready:
        return _pending("PoolNotReady", f"Pool {pool!r} is not Ready yet")
    if observed.model_problem:
        return _pending("ModelUnavailable", observed.model_problem)
    if not observed.ring_converged:
        return _pending("RingNotConverged", f"waiting for the ring of pool {pool!r} to converge")
    return _pending("EngineUnavailable", "this agent has no inference engine to run the job")


def _pending(reason: str, message: str) -> Plan:
    return Plan(
        status={"phase": "Pending"}, conditions=[not_ready(reason, message)], requeue_after=10
    )
