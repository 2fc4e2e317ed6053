"""The checks of `meshctl doctor`: each returns findings; the verdict reads them.

A finding is (level, topic, message): level ok | warn | fail. The checks only read
this device's files, its store, the kernel's multicast table, and open TCP
connections to the relay and control-plane addresses the pools name.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

from manifests import Pool
from manifests.fields import split_host_port
from meshctl.agentops import interface_report
from meshctl.doctor_findings import Finding, Level
from reconciler.certs.errors import CertError
from reconciler.certs.files import load_certificate
from reconciler.certs.member import read_member_certificate
from reconciler.home import Home
from reconciler.observed import beacons_key, gossip_key, peers_key, ring_key
from reconciler.pools import read_pool_info
from reconciler.store import Store

SKEW_WARN_SECONDS = 2.0
MAX_SKEW_SECONDS = 120.0


def multicast_groups(path: Path = Path("/proc/net/igmp")) -> dict[str, set[str]]:
    """Interface -> multicast groups the kernel has joined (Linux)."""
    groups: dict[str, set[str]] = {}
    try:
        lines = path.read_text().splitlines()[1:]
    except OSError:
        return groups
    device = ""
    for line in lines:
        if not line.startswith("\t"):
            device = line.split()[1]
            continue
        hex_group = line.split()[0]
        octets = [str(int(hex_group[i : i + 2], 16)) for i in (6, 4, 2, 0)]
        groups.setdefault(device, set()).add(".".join(octets))
    return groups


def check_interfaces(pool: Pool) -> list[Finding]:
    report = interface_report(pool.spec.discovery)
    listed = ", ".join(f"{n} {a}" for n, a in report.get("interfaces", {}).items())
    found = [Finding("ok", "interfaces", listed)]
    if "chooseError" in report:
        return [*found, Finding("fail", "beacons", str(report["chooseError"]))]
    chosen = report.get("chosen", [])
    group, port = report.get("group"), report.get("port")
    names = ", ".join(f"{c['name']} ({c['address']})" for c in chosen)
    found.append(Finding("ok", "beacons", f"on {names} to {group}:{port} ({report.get('why')}; "
                                          f"as {report.get('seenBy')} sees them)"))  # fmt: skip
    groups = multicast_groups()
    for interface in chosen:
        name = interface["name"]
        if group in groups.get(name, set()):
            found.append(Finding("ok", "multicast", f"{name} is in group {group}"))
        else:
            found.append(Finding("warn", "multicast", f"{name} is not in group "
                                                      f"{group} (is the agent running?)"))  # fmt: skip
    return found


def check_certificate(home: Home, pool: Pool, now: float) -> list[Finding]:
    try:
        der = load_certificate(home.pool_dir(pool.metadata.name) / "member.crt")
    except (OSError, ValueError):
        return [Finding("fail", "certificate", "no member certificate: this device has not joined")]
    try:
        cert = read_member_certificate(der)
    except CertError as err:
        return [Finding("fail", "certificate", f"unreadable: {err}")]
    days = (cert.not_after - now) / 86400
    if days <= 0:
        return [
            Finding(
                "fail", "certificate", "expired: the agent renews it from the admin once running"
            )
        ]
    level: Level = "warn" if days < 3 else "ok"
    return [
        Finding(
            level,
            "certificate",
            f"{cert.role} certificate for {cert.node_id}, valid {days:.1f} more days",
        )
    ]


def check_beacons(store: Store, pool: Pool) -> list[Finding]:
    name = pool.metadata.name
    stats: dict[str, Any] = store.get_observed(beacons_key(name)) or {}
    if not stats:
        return [
            Finding("warn", "beacons", "no beacon statistics: the agent is not running this pool")
        ]
    peers = stats.get("peers", {})
    found = [Finding("ok", "beacons", f"sent {stats.get('sent', 0)}, received {stats.get('received', 0)}, "
                                      f"from {len(peers)} peer(s)")]  # fmt: skip
    drops = stats.get("drops", {})
    foreign = {k: v for k, v in drops.items() if k != "self" and v}
    if foreign:
        found.append(
            Finding("warn", "dropped", ", ".join(f"{k}={v}" for k, v in sorted(foreign.items())))
        )
    refused = stats.get("gossipDrops", {})
    if refused:  # a member sent gossip that was refused: a bug, or a hostile member
        listed = ", ".join(f"{k}={v}" for k, v in sorted(refused.items()))
        found.append(Finding("warn", "gossip", f"refused from peers: {listed}"))
    for node_id, peer in sorted(peers.items()):
        skew = abs(peer.get("clockSkew") or 0.0)
        level: Level = (
            "fail" if skew > MAX_SKEW_SECONDS else "warn" if skew > SKEW_WARN_SECONDS else "ok"
        )
        found.append(Finding(level, "peer", f"{peer.get('name')} {node_id}: {peer.get('beacons')} beacons "
                                            f"from {peer.get('source')}, clock skew {skew:.2f} s"))  # fmt: skip
    return found


def check_links(store: Store, pool: Pool) -> list[Finding]:
    """The pool's peers and ring: what the running agent sees now (its local API), or
    what it last published to the store when none answers."""
    from meshctl.observed_cmd import live_observed, measure_cells

    name = pool.metadata.name
    live_peers, live_rings = live_observed(store, "peers", name), live_observed(store, "ring", name)
    found = []
    stored_peers = store.get_observed(peers_key(name)) or []
    for peer in live_peers if live_peers is not None else stored_peers:
        level: Level = "ok" if peer.get("linkConnected") else "warn"
        rtt, rate, _, _ = measure_cells(peer)
        found.append(Finding(level, "link", f"{peer.get('name')} {peer.get('address')}: "
                                            f"{peer.get('status')}, link {'up' if level == 'ok' else 'down'} "
                                            f"({peer.get('route', 'direct')}), "
                                            f"rtt {rtt}, throughput {rate}"))  # fmt: skip
    ring = store.get_observed(ring_key(name)) if live_rings is None else next(iter(live_rings), None)
    if ring is None:
        found.append(Finding("warn", "ring", "no ring yet"))
    else:
        level = "ok" if ring.get("converged") else "warn"
        state = "converged" if ring.get("converged") else "not converged"
        found.append(
            Finding(
                level,
                "ring",
                f"{state}: epoch {ring.get('epoch')}, {len(ring.get('members', []))} member(s)",
            )
        )
    return found


def check_measures(store: Store, pool: Pool) -> list[Finding]:
    """This device's kernel speed and free memory, as the agent states them."""
    from meshctl.observed_cmd import self_line

    stats = store.get_observed(gossip_key(pool.metadata.name)) or {}
    measured = stats.get("measured")
    if not measured:
        return []
    level: Level = "ok" if measured.get("speedBytesPerSecond") else "warn"
    return [Finding(level, "measure", self_line(measured))]


def check_services(pool: Pool, timeout: float = 1.0) -> list[Finding]:
    targets = [("relay", r) for r in pool.spec.relays]
    if pool.spec.control_plane:
        targets.append(("control plane", pool.spec.control_plane))
    found = []
    for what, address in targets:
        host, port = split_host_port(address)
        try:
            with socket.create_connection((host, port), timeout=timeout):
                found.append(Finding("ok", what, f"{address} reachable"))
        except OSError as err:
            found.append(Finding("fail", what, f"{address} unreachable: {err.strerror or err}"))
    return found


def check_pool(home: Home, store: Store, pool: Pool) -> list[Finding]:
    from meshctl.doctor_discovery import check_discovery

    if read_pool_info(home, pool.metadata.name) is None:
        return [
            Finding(
                "warn", "pool", "no pool material on this device yet (not created or not joined)"
            )
        ]
    return [
        *check_interfaces(pool),
        *check_certificate(home, pool, time.time()),
        *check_beacons(store, pool),
        *check_discovery(store, pool),
        *check_links(store, pool),
        *check_measures(store, pool),
        *check_services(pool),
    ]
