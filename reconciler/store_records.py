"""The store's records besides objects: the GitOps inventory, events, and observed state
(peers, ring, beacons). A mixin of Store: it uses Store's connection and transactions."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

EventType = Literal["Normal", "Warning"]


def utcnow() -> datetime:
    """The current UTC time, whole milliseconds."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def isotime(moment: datetime) -> str:
    """RFC 3339 UTC text, spelled as pydantic spells it (so status round-trips exactly)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class Event:
    """Something that happened to an object (deduplicated like Kubernetes events)."""

    kind: str
    name: str
    type: str
    reason: str
    message: str
    count: int
    first_seen: str
    last_seen: str


class RecordsMixin:
    """Inventory, events and observed state, on the Store's SQLite connection."""

    _db: sqlite3.Connection

    def _write(self) -> contextlib.AbstractContextManager[None]:
        raise NotImplementedError

    def _write_bumping(self) -> contextlib.AbstractContextManager[None]:
        raise NotImplementedError

    # -- inventory (GitOps) -----------------------------------------------------------

    def inventory(self, source: str) -> list[tuple[str, str]]:
        """(kind, name) of the objects last applied from a source file."""
        rows = self._db.execute(
            "SELECT kind, name FROM inventory WHERE source = ? ORDER BY kind, name", (source,)
        ).fetchall()
        return [(r["kind"], r["name"]) for r in rows]

    def sources(self) -> list[str]:
        """Every source file with objects in the inventory."""
        rows = self._db.execute("SELECT DISTINCT source FROM inventory ORDER BY source")
        return [r["source"] for r in rows.fetchall()]

    def source_of(self, kind: str, name: str) -> str | None:
        """The file an object was last applied from by the folder watch, if any."""
        row = self._db.execute(
            "SELECT source FROM inventory WHERE kind = ? AND name = ?", (kind, name)
        ).fetchone()
        return None if row is None else str(row["source"])

    # -- events -------------------------------------------------------------------------

    def record_event(
        self, kind: str, name: str, type_: EventType, reason: str, message: str
    ) -> None:
        """Record an event; the same event again bumps the last one's count."""
        now = isotime(utcnow())
        with self._write():
            last = self._db.execute(
                "SELECT id, type, reason, message FROM events WHERE kind = ? AND name = ? "
                "ORDER BY id DESC LIMIT 1",
                (kind, name),
            ).fetchone()
            if last is not None and (last["type"], last["reason"], last["message"]) == (
                type_, reason, message,
            ):  # fmt: skip
                self._db.execute(
                    "UPDATE events SET count = count + 1, last_seen = ? WHERE id = ?",
                    (now, last["id"]),
                )
            else:
                self._db.execute(
                    "INSERT INTO events (first_seen, last_seen, kind, name, type, reason, "
                    "message) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (now, now, kind, name, type_, reason, message),
                )

    def events(
        self, kind: str | None = None, name: str | None = None, limit: int = 50
    ) -> list[Event]:
        """The latest events, oldest first, optionally of one object."""
        query, args = "SELECT * FROM events", []
        if kind is not None and name is not None:
            query, args = query + " WHERE kind = ? AND name = ?", [kind, name]
        rows = self._db.execute(query + " ORDER BY id DESC LIMIT ?", [*args, limit]).fetchall()
        return [
            Event(r["kind"], r["name"], r["type"], r["reason"], r["message"], r["count"],
                  r["first_seen"], r["last_seen"])
            for r in reversed(rows)
        ]  # fmt: skip

    # -- observed state (peers, ring, ...) -----------------------------------------------

    def put_observed(self, key: str, value: Any, volatile: bool = False) -> None:
        """Store a piece of observed state (JSON-serialisable) under a key; wakes agents
        (bumps the revision) unless ``volatile`` (counters, last seen: nobody decides on
        them, readers read them when they look)."""
        write = self._write() if volatile else self._write_bumping()
        with write:
            self._db.execute(
                "INSERT OR REPLACE INTO observed VALUES (?, ?, ?)",
                (key, _dumps(value), isotime(utcnow())),
            )

    def get_observed(self, key: str) -> Any:
        """A piece of observed state, or None."""
        row = self._db.execute("SELECT value FROM observed WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row["value"])
