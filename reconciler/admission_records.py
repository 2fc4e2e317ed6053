"""On the admin device: mirror join decisions into the store (the machine decides;
this records).

Only what the admin must see becomes a Member: approved requests, and pending ones in
approve mode (at most ``MAX_PENDING_MEMBERS``; the oldest pending request goes first).
A refused request from an unknown key is a counter (``store_admin.count_denial``), and
a rate-limited one is not written at all, so anonymous requests cannot fill the store.
Token uses are spent by the desk itself (``store_admin.charge_token``), not here.
"""

from __future__ import annotations

from typing import Any

from manifests import Member
from manifests.base import object_name_from
from reconciler.beacon.events import JoinRequested
from reconciler.certs.desk import AdminDesk
from reconciler.certs.joinlimits import RATE_LIMITED
from reconciler.certs.member import read_member_certificate
from reconciler.material import cert_summary
from reconciler.poolinfo import PoolInfo
from reconciler.store import Conflict, EventType, Store
from reconciler.store_admin import (
    count_denial,
    drop_pending_member,
    member_name_by_node_id,
    pending_member_names,
)

PHASES = {"approved": "Joined", "pending": "Pending", "denied": "Denied"}
REASONS = {"approved": "JoinApproved", "pending": "JoinPending", "denied": "JoinDenied"}
MAX_PENDING_MEMBERS = 256


def name_candidates(device_name: str, node_id: str) -> list[str]:
    """Member names for a device: its name made DNS-safe, then with its node ID."""
    base = object_name_from(device_name, limit=40)
    short = node_id.removeprefix("node-")
    return [base, f"{base}-{short[:8]}", f"{base}-{short}"]


def member_name(store: Store, device_name: str, node_id: str) -> str:
    """A Member name for a device: its name made DNS-safe, or with its node ID when taken."""
    candidates = name_candidates(device_name, node_id)
    for candidate in candidates[:2]:
        existing = store.get("Member", candidate)
        if not isinstance(existing, Member) or existing.status.node_id in (None, node_id):
            return candidate
    return candidates[-1]


def find_member(store: Store, node_id: str) -> Member | None:
    """The Member of a node ID (an indexed lookup, whatever the number of Members)."""
    name = member_name_by_node_id(store, node_id)
    obj = store.get("Member", name) if name is not None else None
    return obj if isinstance(obj, Member) else None


def record_join(store: Store, info: PoolInfo, desk: AdminDesk, event: JoinRequested) -> str | None:
    """Record a join decision; the Member's name, or None when only counted."""
    if event.status == "denied" and event.reason == RATE_LIMITED:
        return None  # counted by the desk's limiter, in memory
    member = find_member(store, event.node_id)
    if member is None and event.status not in ("approved", "pending"):
        count_denial(store, info.name, event.reason, str(event.source[0]), event.device_name)
        return None
    status: dict[str, Any] = (
        member.status.model_dump(mode="json", by_alias=True, exclude_none=True) if member else {}
    )
    if member is None or member.status.phase != "Revoked":
        status["phase"] = PHASES.get(event.status, "Pending")
    status.update({"nodeId": event.node_id, "keyFingerprint": event.fingerprint})
    if event.cert_der:
        status.update(cert_summary(read_member_certificate(event.cert_der)))
    if member is None:
        if event.status == "pending":
            _make_room_for_pending(store)
        name = _create_member(store, info, event, status)
    else:
        name = member.metadata.name
        store.update_status("Member", name, status)
    event_type: EventType = "Warning" if event.status == "denied" else "Normal"
    message = f"{event.device_name} ({event.node_id}) from {event.source[0]}: {event.reason}"
    store.record_event("Member", name, event_type, REASONS.get(event.status, "Join"), message)
    return name


def _create_member(
    store: Store, info: PoolInfo, event: JoinRequested, status: dict[str, Any]
) -> str:
    """Create the Member of a new node under the first free name (atomically: another
    admitter creating the same name at once makes us take the next one)."""
    spec = {
        "pool": {"name": info.name, "id": info.pool_id, "rootFingerprint": info.root_fingerprint},
        "deviceName": event.device_name[:64],
    }
    candidates = name_candidates(event.device_name, event.node_id)
    for name in candidates:
        document = {
            "metadata": {"name": name, "labels": {"meshnet.dev/node-id": event.node_id}},
            "spec": spec,
        }
        try:
            store.create(Member.model_validate(document), status)
        except Conflict:
            continue
        return name
    raise Conflict(f"every Member name of {event.node_id} is taken: {', '.join(candidates)}")


def _make_room_for_pending(store: Store) -> None:
    """Keep at most MAX_PENDING_MEMBERS pending requests: drop the oldest."""
    pending = pending_member_names(store)
    for name in pending[: max(0, len(pending) - MAX_PENDING_MEMBERS + 1)]:
        drop_pending_member(store, name)


def mark_revoked(store: Store, fingerprints: frozenset[str]) -> None:
    """Set phase Revoked on the Members whose key is in the revocation list."""
    for obj in store.list("Member"):
        if not isinstance(obj, Member) or obj.status.phase == "Revoked":
            continue
        if obj.status.key_fingerprint in fingerprints:
            status = obj.status.model_dump(mode="json", by_alias=True, exclude_none=True)
            store.update_status("Member", obj.metadata.name, {**status, "phase": "Revoked"})
