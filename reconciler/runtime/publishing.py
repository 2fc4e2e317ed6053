"""Turning a pool runtime's machines into the documents it publishes (pure reads)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.beacon.machine import BeaconProtocol
from reconciler.drivers.peerlinks import LinkStats
from reconciler.gossip.linkstats import LinkStat, MeasureReport
from reconciler.gossip.machine import GossipProtocol
from reconciler.observed import wall_time
from reconciler.runtime.beaconsockets import BeaconSockets


@dataclass(frozen=True)
class PeerSources:
    """What a pool runtime knows of its peers, beyond the gossip machine."""

    node_id: str  # this device's
    links: Mapping[str, LinkStats]  # peer link counters, by node ID
    beacon_peers: Mapping[str, dict[str, Any]]  # what the beacons told, by node ID
    rendezvous_met: Collection[str]  # node IDs we met only through a rendezvous


def peer_rows(
    gossip: GossipProtocol, sources: PeerSources, now: float, measured: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """The other members, as `meshctl get peers` lists them (``measured``: the figures
    of ``measure_table``, refreshed every few seconds, not at every probe)."""
    rows = []
    for member in gossip.members():
        if member.node_id == sources.node_id:
            continue
        link = sources.links.get(member.node_id)
        beacon = sources.beacon_peers.get(member.node_id, {})
        rows.append({
            "nodeId": member.node_id,
            "name": member.name,
            "address": member.address,
            "status": member.status,
            "lastSeen": wall_time(member.last_seen, now),
            "incarnation": member.incarnation,
            "route": link.route if link else "direct",
            "foundBy": found_by(sources, member.node_id),
            "linkConnected": bool(link and link.connected),
            "bytesSent": link.bytes_sent if link else 0,
            "bytesReceived": link.bytes_received if link else 0,
            "beacons": beacon.get("beacons", 0),
            "clockSkew": beacon.get("clockSkew"),
            "memoryBytes": member.meta.memory_bytes,
            "cores": member.meta.cores,
            **measured.get(member.node_id, measure_fields(None, None)),
        })  # fmt: skip
    return rows


def measure_table(gossip: GossipProtocol, now: float) -> dict[str, dict[str, Any]]:
    """Per member (this node included): our link figures to it and its own statement."""
    reports, links = gossip.measure_reports(now), gossip.link_stats()
    return {
        m.node_id: measure_fields(links.get(m.node_id), reports.get(m.node_id))
        for m in gossip.members()
    }


def measure_fields(link: LinkStat | None, report: MeasureReport | None) -> dict[str, Any]:
    """Our round trip and throughput to a peer, its own kernel speed and free memory
    (None where not measured yet)."""
    rtt = link.rtt_s if link is not None else None
    rate = link.bytes_per_s if link is not None else None
    return {
        "rttSeconds": round(rtt, 6) if rtt is not None else None,
        "throughputBytesPerSecond": round(rate) if rate is not None else None,
        "speedBytesPerSecond": _rounded(report.speed_bytes_per_s if report else None),
        "freeMemoryBytes": report.free_memory if report is not None else None,
    }


def _rounded(value: float | None) -> int | None:
    return None if value is None else round(value)


def found_by(sources: PeerSources, node_id: str) -> str:
    """How we first learnt of a peer: its beacon, a rendezvous, or gossip."""
    if node_id in sources.beacon_peers:
        return "beacon"
    return "rendezvous" if node_id in sources.rendezvous_met else "gossip"


def ring_document(gossip: GossipProtocol) -> dict[str, Any] | None:
    """The ring as the topology file shows it, with whether it has converged."""
    ring = gossip.ring
    return None if ring is None else ring.to_topology_json(converged=gossip.converged)


def beacon_stats(
    beacon: BeaconProtocol, sockets: BeaconSockets, peers: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """Beacon counters for doctor and `get peers -o wide`."""
    return {
        "interface": {"name": sockets.interface.name, "address": sockets.interface.address},
        "interfaces": [{"name": i.name, "address": i.address} for i in sockets.interfaces],
        "sent": sockets.pump.sent,
        "received": sockets.pump.received,
        "drops": dict(beacon.drops),
        "peers": {
            node: {k: v for k, v in seen.items() if k != "lastBeacon"}
            for node, seen in peers.items()
        },
    }
