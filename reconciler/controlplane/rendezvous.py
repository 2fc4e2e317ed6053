"""The control plane as a rendezvous (for networks where multicast beacons do not get
through): ``POST /v1/rendezvous``, authenticated by the member certificate.

A member sends where it listens for peer links; the control plane keeps it for
``RENDEZVOUS_TTL_SECONDS`` in the store (``rendezvous/<pool>``, read by the admin's agent, which
seeds its gossip with it) and answers with the pool's admin (its agent publishes
``rendezvous-self/<pool>``; the address is the one the caller reached us on) and the
other members registered. The table is bounded; a full one refuses newcomers (429).
"""

from __future__ import annotations

import threading
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from reconciler.controlplane.auth import Caller, require_member
from reconciler.controlplane.state import AppState
from reconciler.observed import RENDEZVOUS_TTL_SECONDS, rendezvous_key, rendezvous_self_key

router = APIRouter(prefix="/v1")
Member = Annotated[Caller, Depends(require_member)]
MAX_ENTRIES = 256
REWRITE_SECONDS = 2.0  # an unchanged registration is written to the store at most this often
ADDRESS = r"^[A-Za-z0-9.:\[\]-]{1,58}:[0-9]{1,5}$"
_lock = threading.Lock()


class Registration(BaseModel):
    """Where a member listens for peer links."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(max_length=64)
    addresses: list[Annotated[str, Field(pattern=ADDRESS)]] = Field(max_length=8)
    memory_bytes: int = Field(default=0, ge=0, le=2**63, alias="memoryBytes")
    cores: int = Field(default=0, ge=0, le=65535)


def _entry(node_id: str, body: Registration, now: float) -> dict[str, Any]:
    return {"nodeId": node_id, "name": body.name, "addresses": body.addresses,
            "memoryBytes": body.memory_bytes, "cores": body.cores, "seen": now}  # fmt: skip


def _same_and_recent(old: Any, new: dict[str, Any], now: float) -> bool:
    if not isinstance(old, dict) or now - float(old.get("seen", 0)) >= REWRITE_SECONDS:
        return False
    return {k: v for k, v in old.items() if k != "seen"} == {
        k: v for k, v in new.items() if k != "seen"
    }


def register(state: AppState, caller: Caller, body: Registration, local_host: str) -> list[Any]:
    """Record the caller; the peers it should know (the admin first)."""
    store, pool, node_id, now = state.store(), caller.pool.name, caller.cert.node_id, time.time()
    with _lock:
        table = store.get_observed(rendezvous_key(pool))
        table = table if isinstance(table, dict) else {}
        table = {k: v for k, v in table.items() if now - float(v.get("seen", 0)) < RENDEZVOUS_TTL_SECONDS}
        if node_id not in table and len(table) >= MAX_ENTRIES:
            raise HTTPException(429, f"the rendezvous holds its maximum of {MAX_ENTRIES} members")
        entry, old = _entry(node_id, body, now), table.get(node_id)
        if not _same_and_recent(old, entry, now):  # a repeat does not rewrite the store
            table[node_id] = entry
            store.put_observed(rendezvous_key(pool), table)
    peers = [{k: v for k, v in e.items() if k != "seen"} for k, e in table.items() if k != node_id]
    admin = store.get_observed(rendezvous_self_key(pool))
    if isinstance(admin, dict) and admin.get("nodeId") not in (None, node_id):
        reached = f"{local_host}:{admin.get('port')}"
        addresses = [reached, *(a for a in admin.get("addresses", []) if a != reached)]
        peers.insert(0, {**admin, "addresses": addresses[:8]})
    return peers


@router.post("/rendezvous")
def post_rendezvous(body: Registration, request: Request, caller: Member) -> dict[str, Any]:
    """Register where the caller listens; the members of its pool it should dial."""
    state: AppState = request.app.state.meshnet
    server = request.scope.get("server") or ("", 0)
    return {"pool": caller.pool.name, "peers": register(state, caller, body, str(server[0]))}
