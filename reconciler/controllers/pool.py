"""The Pool controller: on the admin device, make the pool root CA and report it.

A Pool this device created is administered here (role admin); a Pool this device
joined as a member is recorded with role member when its certificate arrives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from manifests import Pool
from reconciler.controllers.base import Action, Plan, not_ready, ready
from reconciler.pools import PoolInfo


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


NOT_INITIALIZED = "this device has no identity yet: run `meshctl init --network-id ID --name NAME`"


def plan(pool: Pool, observed: PoolObserved, now: float) -> Plan:
    """What to do for a Pool, given what was observed."""
    if not observed.node_initialized:
        return Plan(conditions=[not_ready("NodeNotInitialized", NOT_INITIALIZED)], requeue_after=5)
    if observed.info is None:
        return Plan(actions=[CreatePoolRoot(pool.metadata.name)])
    info = observed.info
    status = {
        "poolId": info.pool_id,
        "rootFingerprint": info.root_fingerprint,
        "role": info.role,
    }
    if info.role == "admin":
        message = f"pool {info.pool_id} created; this device is its admin"
        return Plan(status=status, conditions=[ready("RootReady", message)])
    message = f"joined pool {info.pool_id} as a member"
    return Plan(status=status, conditions=[ready("Joined", message)])
