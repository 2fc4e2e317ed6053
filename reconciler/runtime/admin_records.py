"""On the admin device: mirror join decisions into the store as Member objects, token
usages and events (the machine decides; this records)."""

from __future__ import annotations

from typing import Any

from manifests import Member
from manifests.base import object_name_from
from reconciler.beacon.admin import AdminDesk
from reconciler.beacon.events import JoinRequested
from reconciler.certs.member import read_member_certificate
from reconciler.pools import PoolInfo
from reconciler.runtime.material import cert_summary
from reconciler.store import EventType, Store
from reconciler.store_admin import set_token_usages

PHASES = {"approved": "Joined", "pending": "Pending", "denied": "Denied"}
REASONS = {"approved": "JoinApproved", "pending": "JoinPending", "denied": "JoinDenied"}


def member_name(store: Store, device_name: str, node_id: str) -> str:
    """A Member name for a device: its name made DNS-safe, or with its node ID when taken."""
    base = object_name_from(device_name, limit=40)
    for candidate in (base, f"{base}-{node_id.removeprefix('node-')[:8]}"):
        existing = store.get("Member", candidate)
        if not isinstance(existing, Member) or existing.status.node_id in (None, node_id):
            return candidate
    return f"{base}-{node_id.removeprefix('node-')}"


def find_member(store: Store, node_id: str) -> Member | None:
    for obj in store.list("Member"):
        if isinstance(obj, Member) and obj.status.node_id == node_id:
            return obj
    return None


def record_join(store: Store, info: PoolInfo, desk: AdminDesk, event: JoinRequested) -> str:
    """Create or update the Member of a join request; the Member's name."""
    member = find_member(store, event.node_id)
    name = member.metadata.name if member else member_name(store, event.device_name, event.node_id)
    if member is None:
        document = {
            "metadata": {"name": name, "labels": {"meshnet.dev/node-id": event.node_id}},
            "spec": {
                "pool": {
                    "name": info.name,
                    "id": info.pool_id,
                    "rootFingerprint": info.root_fingerprint,
                },
                "deviceName": event.device_name[:64],
            },
        }
        created, _ = store.apply(Member.model_validate(document))
        assert isinstance(created, Member)
        member = created
    status: dict[str, Any] = member.status.model_dump(mode="json", by_alias=True, exclude_none=True)
    if member.status.phase != "Revoked":
        status["phase"] = PHASES.get(event.status, "Pending")
    status.update({"nodeId": event.node_id, "keyFingerprint": event.fingerprint})
    if event.cert_der:
        status.update(cert_summary(read_member_certificate(event.cert_der)))
    store.update_status("Member", name, status)
    if event.token_id is not None and event.token_id in desk.tokens:
        set_token_usages(store, event.token_id, desk.tokens[event.token_id].usages_left)
    event_type: EventType = "Warning" if event.status == "denied" else "Normal"
    message = f"{event.device_name} ({event.node_id}) from {event.source[0]}: {event.reason}"
    store.record_event("Member", name, event_type, REASONS.get(event.status, "Join"), message)
    return name


def mark_revoked(store: Store, fingerprints: frozenset[str]) -> None:
    """Set phase Revoked on the Members whose key is in the revocation list."""
    for obj in store.list("Member"):
        if not isinstance(obj, Member) or obj.status.phase == "Revoked":
            continue
        if obj.status.key_fingerprint in fingerprints:
            status = obj.status.model_dump(mode="json", by_alias=True, exclude_none=True)
            store.update_status("Member", obj.metadata.name, {**status, "phase": "Revoked"})
