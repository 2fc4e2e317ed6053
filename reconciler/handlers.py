"""The executor's kind handlers: how each controller observes the world and acts.

This is where the pure controllers meet the device's files and store.
"""

from __future__ import annotations

from pathlib import Path

from manifests import Job, Member, Pool
from reconciler.controllers import job as job_controller
from reconciler.controllers import member as member_controller
from reconciler.controllers import pool as pool_controller
from reconciler.executor import KindHandler
from reconciler.home import Home
from reconciler.pools import create_root, read_pool_info
from reconciler.store import Store


def _token_problem(member: Member) -> str | None:
    if member.spec.token_file is None:
        return None
    path = Path(member.spec.token_file).expanduser()
    try:
        path.read_text()
    except OSError as err:
        return f"cannot read token file {path}: {err.strerror or err}"
    return None


def _model_problem(model: str) -> str | None:
    if model == "demo":
        return None
    if not Path(model).expanduser().exists():
        return f"model path {model} does not exist on this device"
    return None


def build_handlers(home: Home, store: Store) -> list[KindHandler]:
    """The handlers of every kind for one device."""

    def initialized() -> bool:
        return home.node_key.exists() and home.node_config.exists()

    def observe_pool(pool: Pool) -> pool_controller.PoolObserved:
        return pool_controller.PoolObserved(initialized(), read_pool_info(home, pool.metadata.name))

    def create_pool_root(action: pool_controller.CreatePoolRoot) -> str:
        info = create_root(home, action.pool_name)
        return f"created pool root {info.pool_id} ({info.root_fingerprint})"

    def observe_member(member: Member) -> member_controller.MemberObserved:
        info = read_pool_info(home, member.spec.pool.name)
        return member_controller.MemberObserved(initialized(), info, _token_problem(member))

    def observe_job(job: Job) -> job_controller.JobObserved:
        pool = store.get("Pool", job.spec.pool)
        pool_ready = pool is not None and any(
            c.type == "Ready" and c.status == "True" for c in pool.status.conditions
        )
        return job_controller.JobObserved(
            pool_exists=pool is not None,
            pool_ready=pool_ready,
            model_problem=_model_problem(job.spec.model),
            ring_converged=False,
        )

    return [
        KindHandler(
            "Pool",
            observe_pool,
            pool_controller.plan,
            {pool_controller.CreatePoolRoot: create_pool_root},
        ),
        KindHandler("Member", observe_member, member_controller.plan),
        KindHandler("Job", observe_job, job_controller.plan),
    ]
