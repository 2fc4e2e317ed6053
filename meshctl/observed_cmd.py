"""Observed state: the peers and the ring each pool's agent reports."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from meshctl.agentclient import AgentClient, AgentGone, NoAgent
from meshctl.render import age, console, dump, emit, err_console, markup_escape, table
from reconciler.home import Home
from reconciler.observed import beacons_key, gossip_key, peers_key, ring_key
from reconciler.store import Store
from reconciler.store_admin import denials

OBSERVED_KINDS = {"peers": "peers", "peer": "peers", "ring": "ring", "rings": "ring"}


def pool_names(store: Store, pool: str | None) -> list[str]:
    names = [str(doc["metadata"]["name"]) for doc in store.documents("Pool")]
    return [n for n in names if pool is None or n == pool]


def live_observed(store: Store, what: str, pool: str | None) -> list[dict[str, Any]] | None:
    """What the running agent of this store sees now (None: no agent answers)."""
    try:
        return AgentClient(Home(store.path.parent).agent_socket).observed(what, pool)
    except (NoAgent, AgentGone):
        return None


def peers(store: Store, pool: str | None) -> list[dict[str, Any]]:
    live = live_observed(store, "peers", pool)
    if live is not None:
        return live
    items = []
    for name in pool_names(store, pool):
        for row in store.get_observed(peers_key(name)) or []:
            items.append({"pool": name, **row})
    return items


def rings(store: Store, pool: str | None) -> list[dict[str, Any]]:
    live = live_observed(store, "ring", pool)
    if live is not None:
        return live
    items = []
    for name in pool_names(store, pool):
        ring = store.get_observed(ring_key(name))
        if ring is not None:
            items.append({"pool": name, **ring})
    return items


def print_peers(items: list[dict[str, Any]], fmt: str) -> None:
    if fmt in ("json", "yaml"):
        emit(dump({"apiVersion": "v1", "kind": "List", "items": items}, fmt))
        return
    if not items:
        err_console.print("No peers found (is the agent running? meshctl agent / mesh start).")
        return
    headers = ["NODE ID", "NAME", "ADDRESS", "STATUS", "LAST SEEN"]
    wide = fmt == "wide"
    if wide:
        headers += ["POOL", "ROUTE", "FOUND BY", "LINK", "SENT", "RECEIVED", "BEACONS", "SKEW",
                    "RTT", "THROUGHPUT", "SPEED", "FREE MEM"]  # fmt: skip
    rows = []
    for p in items:
        seen = f"{p['lastSeen']} ({age(p['lastSeen'])} ago)" if p.get("lastSeen") else "-"
        row = [p["nodeId"], p.get("name", ""), p.get("address", ""), p.get("status", ""), seen]
        if wide:
            row += [p["pool"], p.get("route", "direct"), p.get("foundBy", "-"),
                    "up" if p.get("linkConnected") else "down",
                    p.get("bytesSent", 0), p.get("bytesReceived", 0), p.get("beacons", 0),
                    p.get("clockSkew") if p.get("clockSkew") is not None else "-",
                    *measure_cells(p)]  # fmt: skip
        rows.append(row)
    console.print(table(rows, headers))


def measure_cells(peer: dict[str, Any]) -> list[str]:
    """RTT, THROUGHPUT, SPEED and FREE MEM of a peer row ("-" where not measured)."""
    rtt, rate = peer.get("rttSeconds"), peer.get("throughputBytesPerSecond")
    speed, free = peer.get("speedBytesPerSecond"), peer.get("freeMemoryBytes")
    return [
        f"{rtt * 1e3:.2f}ms" if isinstance(rtt, int | float) else "-",
        f"{_si(rate)}B/s" if isinstance(rate, int | float) else "-",
        f"{_si(speed)}B/s" if isinstance(speed, int | float) else "-",
        f"{free / 2**30:.1f}GiB" if isinstance(free, int | float) else "-",
    ]


def self_line(measured: dict[str, Any]) -> str:
    """This device's kernel speed (and how it was measured) and free memory (and the
    memory it offers, when it offers a limit)."""
    _, _, speed, free = measure_cells(measured)
    test = measured.get("selftest") or {}
    how = (
        f" ({test.get('kernels')}, {test.get('activations')} activations, "
        f"{test.get('threads')} threads)"
        if test
        else " (self-test not run yet, or off)"
    )
    offer = measured.get("memoryOfferBytes")
    offered = f" (at most its offer, {offer / 2**30:.1f}GiB)" if isinstance(offer, int) else ""
    return f"kernel speed {speed}{how}, free memory {free}{offered}"


def _si(value: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.1f}{unit}"
    return f"{value:.0f}"


def print_rings(items: list[dict[str, Any]], fmt: str) -> None:
    if fmt in ("json", "yaml"):
        data = items[0] if len(items) == 1 else {"apiVersion": "v1", "kind": "List", "items": items}
        emit(dump(data, fmt))
        return
    if not items:
        err_console.print("No ring yet (is the agent running, and has the pool started?).")
        return
    for ring in items:
        state = "converged" if ring.get("converged") else "converging"
        console.print(
            f"[bold]{markup_escape(ring['pool'])}[/bold] {markup_escape(ring.get('poolId'))}  "
            f"epoch {ring.get('epoch')}  "
            f"{state}  hash {str(ring.get('hash'))[:16]}  shardColumns {ring.get('shardColumns')}"
        )
        rows = [_slot_row(m) for m in ring.get("members", [])]
        console.print(table(rows, ["POSITION", "NODE ID", "NAME", "ADDRESS", "COLUMNS", "WIDTH"]))


def _slot_row(member: dict[str, Any]) -> list[Any]:
    start, end = member["shard"]["start"], member["shard"]["end"]
    address = member.get("address", "")
    return [member["position"], member["nodeId"], member.get("name", ""), address,
            f"{start}-{end}", end - start]  # fmt: skip


def describe_pool_extras(store: Store, pool: str) -> Callable[[], None]:
    """What `describe pool` adds: peers, the ring, and beacon health."""
    found_peers, found_rings = peers(store, pool), rings(store, pool)
    beacons = store.get_observed(beacons_key(pool)) or {}
    measured = (store.get_observed(gossip_key(pool)) or {}).get("measured")
    refused = denials(store, pool)

    def show() -> None:
        if measured:
            console.print(f"[bold]This device:[/bold] {markup_escape(self_line(measured))}")
        if refused:
            console.print("[bold]Refused join requests:[/bold]")
            rows = [[d.reason, d.count, d.last_seen, d.last_source, d.last_device] for d in refused]
            console.print(table(rows, ["REASON", "COUNT", "LAST", "LAST SOURCE", "LAST DEVICE"]))
        console.print("[bold]Peers:[/bold]" + ("" if found_peers else " <none>"))
        if found_peers:
            print_peers(found_peers, "wide")
        console.print("[bold]Ring:[/bold]" + ("" if found_rings else " <none>"))
        if found_rings:
            print_rings(found_rings, "table")
        if beacons:
            interface = beacons.get("interface", {})
            drops = ", ".join(f"{k}={v}" for k, v in sorted(beacons.get("drops", {}).items()))
            console.print(
                f"[bold]Beacons:[/bold] on {markup_escape(interface.get('name'))} "
                f"({markup_escape(interface.get('address'))}), "
                f"sent {beacons.get('sent', 0)}, received {beacons.get('received', 0)}, "
                f"dropped: {markup_escape(drops or 'none')}",
                highlight=False,
            )
            limited = beacons.get("joinsRateLimited") or {}
            if any(limited.values()):
                counts = ", ".join(f"per {k}: {v}" for k, v in sorted(limited.items()))
                console.print(f"[bold]Join requests rate limited:[/bold] {markup_escape(counts)}")
            gossip_refused = beacons.get("gossipDrops", {})
            if gossip_refused:
                listed = ", ".join(f"{k}={v}" for k, v in sorted(gossip_refused.items()))
                console.print(f"[bold]Gossip refused:[/bold] {markup_escape(listed)}", highlight=False)

    return show
