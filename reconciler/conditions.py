"""Merging a plan's conditions into a stored status (pure).

Reconciling and Stalled are "abnormal-true" conditions (kstatus): present only while
true. lastTransitionTime changes only when a condition's status changes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from reconciler.controllers.base import ConditionSpec
from reconciler.store import isotime

ABNORMAL_TRUE = ("Reconciling", "Stalled")


def merge_conditions(
    current: list[dict[str, Any]],
    wanted: list[ConditionSpec],
    now: datetime,
    clear: tuple[str, ...],
) -> list[dict[str, Any]]:
    """`current` with each wanted condition set and the `clear` types removed."""
    by_type = {c["type"]: dict(c) for c in current if c.get("type") not in clear}
    for spec in wanted:
        old = by_type.get(spec.type)
        changed = old is None or old.get("status") != spec.status
        by_type[spec.type] = {
            "type": spec.type,
            "status": spec.status,
            "reason": spec.reason,
            "message": spec.message,
            "lastTransitionTime": isotime(now) if changed else old["lastTransitionTime"],  # type: ignore[index]
        }
    return sorted(by_type.values(), key=lambda c: (c["type"] != "Ready", c["type"]))


def ready_transition(
    before: list[dict[str, Any]], after: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """The Ready condition when its status or reason changed, else None."""
    old = next((c for c in before if c.get("type") == "Ready"), None)
    new = next((c for c in after if c.get("type") == "Ready"), None)
    if new is None:
        return None
    if old is None or (old.get("status"), old.get("reason")) != (new["status"], new["reason"]):
        return new
    return None
