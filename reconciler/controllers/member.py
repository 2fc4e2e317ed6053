"""The Member controller.

On a joining device a Member declares "this device belongs to that pool": the agent
asks the pool's admin for a certificate until it holds one (phase Joined). On the
admin device, Members of its own pool are the records of other devices (requests
pending approval, joined members); the admin never joins its own pool.
"""

from __future__ import annotations

from dataclasses import dataclass

from manifests import Member
from reconciler.controllers.base import Plan, not_ready, ready
from reconciler.controllers.pool import NOT_INITIALIZED
from reconciler.pools import PoolInfo


@dataclass(frozen=True)
class MemberObserved:
    """What the executor saw of the world for one Member."""

    node_initialized: bool
    pool_info: PoolInfo | None
    token_problem: str | None = None
    join_state: str | None = None


def plan(member: Member, observed: MemberObserved, now: float) -> Plan:
    """What to do for a Member, given what was observed."""
    if not observed.node_initialized:
        return Plan(conditions=[not_ready("NodeNotInitialized", NOT_INITIALIZED)], requeue_after=5)
    info = observed.pool_info
    wanted = member.spec.pool
    if info is not None and info.role == "admin":
        return _admin_record(member)
    if info is not None and (info.pool_id, info.root_fingerprint) == (
        wanted.id, wanted.root_fingerprint,
    ):  # fmt: skip
        return Plan(
            status={"phase": "Joined"}, conditions=[ready("Joined", f"member of {info.pool_id}")]
        )
    if info is not None:
        message = (
            f"this device already belongs to a pool named {wanted.name!r} with ID "
            f"{info.pool_id}, not {wanted.id}"
        )
        return Plan(status={"phase": "Denied"}, conditions=[not_ready("PoolMismatch", message)])
    if observed.token_problem:
        return Plan(
            status={"phase": "Pending"},
            conditions=[not_ready("TokenUnreadable", observed.token_problem)],
            requeue_after=10,
        )
    reason = observed.join_state or "WaitingForAdmin"
    message = f"asking the admin of {wanted.id} for a certificate; no answer yet"
    return Plan(status={"phase": "Pending"}, conditions=[not_ready(reason, message)])


def _admin_record(member: Member) -> Plan:
    phase = member.status.phase or "Pending"
    message = f"record of a {phase.lower()} member kept by the pool admin"
    return Plan(status={"phase": phase}, conditions=[ready("AdminRecord", message)])
