"""What the runtimes publish as observed state in the store (read by meshctl, the
control plane and the controllers). Keys are per pool name:

    peers/<pool>    [{nodeId, name, address, status, lastSeen, route, ..., rttSeconds,
                     throughputBytesPerSecond, speedBytesPerSecond, freeMemoryBytes}]
    ring/<pool>     the ring topology dict (with "converged")
    beacons/<pool>  {sent, received, drops: {reason: n}, peers: {nodeId: {...}}}
    gossip/<pool>   {rounds, messagesSent, messagesReceived, epoch, convergeSeconds,
                     measured: {speedBytesPerSecond, freeMemoryBytes, selftest}}
    join/<member>   {state, reason, attempts}   (a device that is joining)
    rendezvous/<pool>       {nodeId: {name, addresses, ..., seen}}  (control plane, admin)
    rendezvous-self/<pool>  where the admin's agent listens (read by the control plane)
"""

from __future__ import annotations

import time
from typing import Any

from reconciler.store import Store

RENDEZVOUS_TTL_SECONDS = 60.0
"""How long a rendezvous registration stays in the table."""


def wall_time(monotonic_then: float | None, monotonic_now: float) -> str | None:
    """An event-loop timestamp as RFC 3339 wall-clock text (second precision)."""
    if monotonic_then is None:
        return None
    moment = time.time() - (monotonic_now - monotonic_then)
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


def publish(
    store: Store, key: str, value: Any, cache: dict[str, Any], volatile: bool = False
) -> None:
    """Write observed state only when it changed. A write wakes the agent's controllers
    unless ``volatile`` (counters, last seen: what no controller decides on)."""
    if cache.get(key) != value:
        store.put_observed(key, value, volatile=volatile)
        cache[key] = value


def decisive_peers(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What the controllers read of the published peers (who, and in which state):
    a peers write wakes them only when this changes."""
    return [(row.get("nodeId"), row.get("name"), row.get("status")) for row in rows]


def peers_key(pool: str) -> str:
    return f"peers/{pool}"


def ring_key(pool: str) -> str:
    return f"ring/{pool}"


def beacons_key(pool: str) -> str:
    return f"beacons/{pool}"


def gossip_key(pool: str) -> str:
    return f"gossip/{pool}"


def join_key(member: str) -> str:
    return f"join/{member}"


def rendezvous_key(pool: str) -> str:
    return f"rendezvous/{pool}"


def rendezvous_self_key(pool: str) -> str:
    return f"rendezvous-self/{pool}"
