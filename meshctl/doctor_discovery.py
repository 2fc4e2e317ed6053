"""Doctor's discovery finding: which paths find this device's peers, and why.

Paths: multicast beacons (on which interfaces, heard from whom), and the rendezvous at
a relay or at the control plane (registered or not, members learnt there). Read from
what the agent publishes (``beacons/<pool>``)."""

from __future__ import annotations

from typing import Any

from manifests import Pool
from meshctl.doctor_findings import Finding, Level
from reconciler.observed import beacons_key
from reconciler.store import Store

NO_MULTICAST_HINT = (
    "multicast may be dropped on this network (access-point client isolation, IGMP "
    "snooping, a firewall)"
)


def check_discovery(store: Store, pool: Pool) -> list[Finding]:
    stats: dict[str, Any] = store.get_observed(beacons_key(pool.metadata.name)) or {}
    if not stats:
        return []
    found = [_multicast(stats)]
    rendezvous = stats.get("rendezvous") or {}
    for relay in stats.get("relays") or []:
        found.append(_relay(relay))
    control_plane = rendezvous.get("controlPlane")
    if control_plane:
        found.append(_control_plane(control_plane))
    met = rendezvous.get("peers") or []
    if met:
        found.append(Finding("ok", "discovery", f"rendezvous: met {len(met)} peer(s) whose "
                                                f"beacons never arrived: {', '.join(met)}"))  # fmt: skip
    if not stats.get("peers") and not stats.get("relays") and not control_plane:
        found.append(Finding("warn", "discovery", "no rendezvous configured: name a relay or "
                             "controlPlane in the Pool (or staticPeers), or join with --relay "
                             "/ --control-plane"))  # fmt: skip
    return found


def _multicast(stats: dict[str, Any]) -> Finding:
    legs = stats.get("interfaces") or [stats.get("interface") or {}]
    names = ", ".join(f"{i.get('name')} ({i.get('address')})" for i in legs)
    heard = len(stats.get("peers") or {})
    if heard:
        return Finding(
            "ok", "discovery", f"multicast on {names}: beacons heard from {heard} peer(s)"
        )
    level: Level = "warn"
    return Finding(level, "discovery", f"multicast on {names}: no beacon heard from any peer; "
                                       f"{NO_MULTICAST_HINT}")  # fmt: skip


def _relay(relay: dict[str, Any]) -> Finding:
    address = relay.get("address")
    if not relay.get("reserved"):
        return Finding("warn", "discovery", f"rendezvous via relay {address}: not connected "
                                            f"({relay.get('lastError') or 'connecting'})")  # fmt: skip
    return Finding("ok", "discovery", f"rendezvous via relay {address}: registered, "
                                      f"{relay.get('peersHeard', 0)} other member(s) there")  # fmt: skip


def _control_plane(status: dict[str, Any]) -> Finding:
    address = status.get("address")
    if status.get("lastError") or not status.get("lastSuccess"):
        return Finding("warn", "discovery", f"rendezvous via control plane {address}: "
                                            f"{status.get('lastError') or 'not answered yet'}")  # fmt: skip
    return Finding("ok", "discovery", f"rendezvous via control plane {address}: registered, "
                                      f"{status.get('peersHeard', 0)} member(s) handed out")  # fmt: skip
