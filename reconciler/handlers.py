"""The executor's kind handlers: how each controller observes the world and acts.

This is where the pure controllers meet the device's files and store.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from manifests import Job, Member, Pool
from reconciler.controllers import job as job_controller
from reconciler.controllers import jobqueue
from reconciler.controllers import member as member_controller
from reconciler.controllers import pool as pool_controller
from reconciler.executor import KindHandler
from reconciler.home import Home
from reconciler.material import certificate_status
from reconciler.models import SUBMITTED_BY, model_problem
from reconciler.node import load_node_config
from reconciler.observed import join_key, peers_key, ring_key
from reconciler.pools import create_root, read_pool_info
from reconciler.runtime.jobrunner import RunState
from reconciler.runtime.joinruntime import JoinError, read_token
from reconciler.store import Store


def _token_problem(member: Member) -> str | None:
    try:
        read_token(member)
    except JoinError as err:
        return str(err)
    return None


def _self_member(home: Home) -> dict[str, str]:
    node = load_node_config(home)
    return {"nodeId": node.node_id, "name": node.name, "status": "ONLINE"}


class JobSupport(Protocol):
    """What the agent offers the Job controller (absent in one-shot commands)."""

    def run_state(self, name: str) -> RunState | None: ...
    def ring_converged(self, pool: str) -> bool: ...
    def start(self, name: str) -> str: ...
    def cancel(self, name: str, reason: str) -> str: ...
    def last_starts(self, pool: str) -> dict[str, float]: ...


def _client(job: Job) -> str:
    return job.metadata.annotations.get(jobqueue.CLIENT_ANNOTATION, "")


def _jobs_ahead(home: Home, store: Store, job: Job, jobs: JobSupport) -> int:
    """Jobs of the same pool that start before this one (fair order, jobqueue.py)."""
    if job.status.phase not in (None, "Pending"):
        return 0
    waiting, running = [], 0
    for other in store.list("Job"):
        if not isinstance(other, Job) or other.spec.pool != job.spec.pool:
            continue
        state = jobs.run_state(other.metadata.name)
        if state is not None and state.phase in ("Scheduled", "Running"):
            running += 1
        elif (
            other.status.phase in (None, "Pending")
            and jobqueue.CANCEL_ANNOTATION not in other.metadata.annotations
            and (
                other.metadata.name == job.metadata.name
                or model_problem(other.spec.model, home, SUBMITTED_BY in other.metadata.annotations)
                is None
            )
        ):
            created = other.metadata.creation_timestamp
            stamp = created.isoformat() if created is not None else ""
            waiting.append(jobqueue.Waiting(other.metadata.name, _client(other), stamp))
    last_starts = jobs.last_starts(job.spec.pool)
    return jobqueue.jobs_ahead(job.metadata.name, waiting, running, last_starts)


def build_handlers(
    home: Home,
    store: Store,
    jobs: JobSupport | None = None,
    wall_clock: Callable[[], float] = time.time,
) -> list[KindHandler]:
    """The handlers of every kind for one device."""

    def initialized() -> bool:
        return home.node_key.exists() and home.node_config.exists()

    def observe_pool(pool: Pool) -> pool_controller.PoolObserved:
        name = pool.metadata.name
        info = read_pool_info(home, name)
        if info is None:
            joining = [
                m.metadata.name for m in store.list("Member")
                if isinstance(m, Member) and m.spec.pool.name == name
            ]  # fmt: skip
            return pool_controller.PoolObserved(
                initialized(), None, joining_as=next(iter(joining), None)
            )
        peers = store.get_observed(peers_key(name)) or []
        members = [_self_member(home)] if initialized() else []
        members += [{k: p.get(k) for k in ("nodeId", "name", "status")} for p in peers]
        ring = store.get_observed(ring_key(name))
        return pool_controller.PoolObserved(initialized(), info, members, ring)

    def create_pool_root(action: pool_controller.CreatePoolRoot) -> str:
        info = create_root(home, action.pool_name)
        return f"created pool root {info.pool_id} ({info.root_fingerprint})"

    def observe_member(member: Member) -> member_controller.MemberObserved:
        info = read_pool_info(home, member.spec.pool.name)
        join = store.get_observed(join_key(member.metadata.name))
        certificate = {}
        if info is not None and info.role == "member":
            certificate = certificate_status(home, info)
        return member_controller.MemberObserved(
            initialized(), info, _token_problem(member), join, certificate
        )

    def observe_job(job: Job) -> job_controller.JobObserved:
        pool = store.get("Pool", job.spec.pool)
        pool_ready = pool is not None and any(
            c.type == "Ready" and c.status == "True" for c in pool.status.conditions
        )
        finished = job.status.phase in ("Succeeded", "Failed")
        if finished and store.get("Job", job.metadata.name) is None:  # after a DeleteJob
            return job_controller.JobObserved(False, False, None, False, deleted=True)
        state = jobs.run_state(job.metadata.name) if jobs else None
        return job_controller.JobObserved(
            wall_clock=wall_clock(),
            cancel_requested=job.metadata.annotations.get(jobqueue.CANCEL_ANNOTATION),
            jobs_ahead=_jobs_ahead(home, store, job, jobs) if jobs else 0,
            pool_exists=pool is not None,
            pool_ready=pool_ready,
            model_problem=model_problem(
                job.spec.model, home, SUBMITTED_BY in job.metadata.annotations
            ),
            ring_converged=jobs.ring_converged(job.spec.pool) if jobs else False,
            runner_available=jobs is not None,
            running=state is not None and state.phase in ("Scheduled", "Running"),
        )

    def start_job(action: job_controller.StartJob) -> str:
        assert jobs is not None
        return jobs.start(action.name)

    def cancel_job(action: job_controller.CancelJob) -> str:
        assert jobs is not None
        return jobs.cancel(action.name, action.reason)

    def delete_job(action: job_controller.DeleteJob) -> str:
        store.delete("Job", action.name)
        return "deleted: its ttlSecondsAfterFinished has passed"

    return [
        KindHandler(
            "Pool",
            observe_pool,
            pool_controller.plan,
            {pool_controller.CreatePoolRoot: create_pool_root},
        ),
        KindHandler("Member", observe_member, member_controller.plan),
        KindHandler(
            "Job",
            observe_job,
            job_controller.plan,
            {
                job_controller.StartJob: start_job,
                job_controller.CancelJob: cancel_job,
                job_controller.DeleteJob: delete_job,
            },
            settled=lambda job: job.status.phase in ("Succeeded", "Failed"),
        ),
    ]
