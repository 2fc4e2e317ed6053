"""One pool as the dashboard shows it, read from the store: members (from the ring and
the peers the agent observes), the ring's column ranges, and recent jobs."""

from __future__ import annotations

from typing import Any

from manifests import Job
from reconciler.context import cores, memory_bytes
from reconciler.observed import peers_key, ring_key
from reconciler.store import Store

RECENT_JOBS = 20


def pool_snapshot(store: Store, name: str, pool_id: str) -> dict[str, Any]:
    ring = store.get_observed(ring_key(name))
    ring = ring if isinstance(ring, dict) else None
    peers = store.get_observed(peers_key(name))
    rows = {p["nodeId"]: p for p in peers if isinstance(p, dict)} if isinstance(peers, list) else {}
    jobs = sorted((j for j in store.list("Job") if isinstance(j, Job) and j.spec.pool == name),
                  key=_created, reverse=True)[:RECENT_JOBS]  # fmt: skip
    speeds = _speeds(jobs)
    return {
        "name": name,
        "poolId": pool_id,
        "ring": ring,
        "members": _members(ring, rows, speeds),
        "jobs": [_job(j) for j in jobs],
    }


def _members(
    ring: dict[str, Any] | None, peers: dict[str, dict[str, Any]], speeds: dict[str, float]
) -> list[dict[str, Any]]:
    """Ring members first (this device has no peer row: it is ONLINE to itself), then
    peers outside the ring."""
    out = []
    slots = ring.get("members", []) if ring else []
    for slot in slots:
        row = peers.get(slot["nodeId"]) or _this_device()
        out.append({**_member(slot["nodeId"], row, speeds), "name": slot.get("name"),
                    "address": slot.get("address"), "status": row.get("status", "ONLINE"),
                    "shard": slot.get("shard"), "self": slot["nodeId"] not in peers})  # fmt: skip
    in_ring = {slot["nodeId"] for slot in slots}
    for node_id, row in peers.items():
        if node_id not in in_ring:
            out.append({**_member(node_id, row, speeds), "name": row.get("name"),
                        "address": row.get("address"), "status": row.get("status"),
                        "shard": None, "self": False})  # fmt: skip
    return out


def _this_device() -> dict[str, Any]:
    """This device has no peer row: what it offers, as its agent measures it."""
    return {"status": "ONLINE", "memoryBytes": memory_bytes(), "cores": cores()}


def _member(node_id: str, row: dict[str, Any], speeds: dict[str, float]) -> dict[str, Any]:
    return {
        "nodeId": node_id,
        "lastSeen": row.get("lastSeen"),
        "memoryBytes": row.get("memoryBytes"),
        "cores": row.get("cores"),
        "route": row.get("route"),
        "computeMsPerToken": speeds.get(node_id),
    }


def _speeds(jobs: list[Job]) -> dict[str, float]:
    """Each member's measured compute time per token, from its latest finished job."""
    speeds: dict[str, float] = {}
    for job in jobs:  # newest first
        tokens = job.status.completion_tokens or 0
        if job.status.phase != "Succeeded" or tokens <= 0:
            continue
        for member in job.status.members:
            speeds.setdefault(member.node_id, round(member.compute_ms / tokens, 2))
    return speeds


def _job(job: Job) -> dict[str, Any]:
    status = job.status
    spec = job.spec
    prompt = spec.prompt if spec.prompt is not None else (spec.messages or [])[-1].content
    return {
        "name": job.metadata.name,
        "phase": status.phase or "Pending",
        "prompt": prompt,
        "output": status.output or "",
        "tokens": status.completion_tokens or len(status.token_ids),
        "tokensPerSecond": status.tokens_per_second,
        "timeToFirstTokenMs": status.time_to_first_token_ms,
        "created": _created(job),
        "members": [
            {"nodeId": m.node_id, "columns": m.columns, "computeMs": m.compute_ms,
             "commMs": m.comm_ms, "bytesSent": m.bytes_sent}
            for m in status.members
        ],
    }


def _created(job: Job) -> str:
    stamp = job.metadata.creation_timestamp
    return stamp.isoformat() if stamp is not None else ""
