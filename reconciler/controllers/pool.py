"""The Pool controller: on the admin device, make the pool root CA and report it.

A Pool this device created is administered here (role admin); a Pool this device
joined as a member is recorded with role member when its certificate arrives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from manifests import Pool
from reconciler.controllers.base import Action, ConditionSpec, Plan, not_ready, ready
from reconciler.poolinfo import PoolInfo


@dataclass(frozen=True)
class CreatePoolRoot(Action):
    """Make the pool root key and self-signed CA certificate on this device."""

    pool_name: str
    event_reason: ClassVar[str] = "PoolRootCreated"


@dataclass(frozen=True)
class PoolObserved:
    """What the executor saw of the world for one Pool."""

    node_initialized: bool
    info: PoolInfo | None
    members: list[dict[str, Any]] = field(default_factory=list)
    ring: dict[str, Any] | None = None
    joining_as: str | None = None  # a Member of this device names this pool: never a root


JOINED_VIA = "meshnet.dev/joined-via"
"""Annotation on a Pool a device holds as a member: it never makes a root for it."""

NOT_INITIALIZED = "this device has no identity yet: run `meshctl init --network-id ID --name NAME`"


def plan(pool: Pool, observed: PoolObserved, now: float) -> Plan:
    """What to do for a Pool, given what was observed."""
    if not observed.node_initialized:
        return Plan(conditions=[not_ready("NodeNotInitialized", NOT_INITIALIZED)], requeue_after=5)
    member = pool.metadata.annotations.get(JOINED_VIA) or observed.joining_as
    if observed.info is None and member:
        message = f"this device joins this pool as a member (Member {member!r}); no certificate yet"
        return Plan(conditions=[not_ready("NotJoined", message)], requeue_after=5)
    if observed.info is None:
        return Plan(actions=[CreatePoolRoot(pool.metadata.name)])
    info = observed.info
    status = {
        "poolId": info.pool_id,
        "rootFingerprint": info.root_fingerprint,
        "role": info.role,
        "members": observed.members,
    }
    conditions = [_ring_condition(observed.ring)]
    if info.role == "admin":
        message = f"pool {info.pool_id} created; this device is its admin"
        return Plan(status=status, conditions=[ready("RootReady", message), *conditions])
    message = f"joined pool {info.pool_id} as a member"
    return Plan(status=status, conditions=[ready("Joined", message), *conditions])


def _ring_condition(ring: dict[str, Any] | None) -> ConditionSpec:
    if ring is None:
        return ConditionSpec("RingConverged", "Unknown", "NoRing", "membership is starting")
    count = len(ring.get("members", []))
    if ring.get("converged"):
        message = f"epoch {ring.get('epoch')}, {count} member(s), hash {str(ring.get('hash'))[:12]}"
        return ConditionSpec("RingConverged", "True", "Converged", message)
    return ConditionSpec("RingConverged", "False", "Converging", f"{count} member(s) agreeing")
