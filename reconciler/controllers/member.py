"""The Member controller.

On a joining device a Member declares "this device belongs to that pool": the agent
asks the pool's admin for a certificate until it holds one (phase Joined). On the
admin device, Members of its own pool are the records of other devices (requests
pending approval, joined members); the admin never joins its own pool.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from manifests import Member
from reconciler.controllers.base import Plan, not_ready, ready
from reconciler.controllers.pool import NOT_INITIALIZED
from reconciler.poolinfo import PoolInfo

JOIN_REASONS = {
    "waiting": ("Pending", "WaitingForAdmin"),
    "starting": ("Pending", "WaitingForAdmin"),
    "pending": ("Pending", "PendingApproval"),
    "denied": ("Denied", "JoinDenied"),
}


@dataclass(frozen=True)
class MemberObserved:
    """What the executor saw of the world for one Member."""

    node_initialized: bool
    pool_info: PoolInfo | None
    token_problem: str | None = None
    join: dict[str, Any] | None = None
    certificate: dict[str, Any] = field(default_factory=dict)


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
        status = {"phase": "Joined", **observed.certificate}
        return Plan(status=status, conditions=[ready("Joined", f"member of {info.pool_id}")])
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
    return _joining(wanted.id, observed.join)


def _joining(pool_id: str, join: dict[str, Any] | None) -> Plan:
    state = (join or {}).get("state", "starting")
    phase, reason = JOIN_REASONS.get(state, ("Pending", "WaitingForAdmin"))
    detail = (join or {}).get("reason") or "no admin heard yet"
    attempts = (join or {}).get("attempts", 0)
    message = f"asking the admin of {pool_id} for a certificate: {detail} (attempt {attempts})"
    return Plan(status={"phase": phase}, conditions=[not_ready(reason, message)])


def _admin_record(member: Member) -> Plan:
    phase = member.status.phase or "Pending"
    if phase == "Joined":
        return Plan(status={"phase": phase}, conditions=[ready("Joined", "member of this pool")])
    message = f"{phase.lower()}: " + (
        "approve with `meshctl certificate approve " + member.metadata.name + "`"
        if phase == "Pending"
        else "recorded by the pool admin"
    )
    return Plan(status={"phase": phase}, conditions=[not_ready(phase, message)])
