"""The object store: SQLite at $MESHNET_HOME/state.db, shared by meshctl and the agent.

Kubernetes semantics: every write bumps a store-wide revision that becomes the object's
resourceVersion; a write naming a stale resourceVersion is refused (Conflict);
`generation` changes only when `spec` changes; status is written only by the agent
(`update_status`). WAL mode and a busy timeout let several processes share the file.

Nothing polls the revision: a write that bumps it calls this connection's listeners
(``on_change``, the agent's own writes) and pings the agent's notify socket
(storenotify.py, everyone else's writes). Volatile writes (``volatile=True``: last seen,
counters, tokens as they stream: ``patch_volatile``, ``put_observed(volatile=True)``)
change the stored document but neither the revision nor the object's resourceVersion,
so they wake nobody; readers that want them compare ``data_version()``.

    StoreError               the database cannot be used (corrupt, newer schema, I/O)
      Conflict               a stale resourceVersion
      NotFound               no such object
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from reconciler.home import HomeError, make_private, make_private_file
from reconciler.store_records import Event, EventType, RecordsMixin, _dumps, isotime, utcnow

__all__ = ["Conflict", "Event", "EventType", "NotFound", "Store", "StoreError", "isotime", "utcnow"]
from reconciler.store_schema import MIGRATIONS, SCHEMA_VERSION
from reconciler.storenotify import Pinger, notify_path

if TYPE_CHECKING:  # the models are imported when used: `meshctl get` reads documents
    from manifests import MeshObject

ApplyOutcome = Literal["created", "configured", "unchanged"]


class StoreError(Exception):
    """The store cannot be used as asked."""


class Conflict(StoreError):
    """The object changed since the resourceVersion the writer read."""


class NotFound(StoreError):
    """No object of that kind and name."""


def _create_private(path: Path) -> None:
    """Create the database file 0600 if it is absent. An existing file is never opened
    here: closing any descriptor of a file drops every POSIX lock this process holds on
    it, including the locks of this process's other SQLite connections, and a writer in
    another process could then corrupt the database."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))


class Store(RecordsMixin):
    """One connection to the object store."""

    def __init__(self, path: Path, ping_agent: bool = True) -> None:
        """``ping_agent``: whether writes that bump the revision ping the agent's notify
        socket (the agent's own connection says False: it notifies its listeners)."""
        self.path = path
        self._listeners: builtins.list[Callable[[], None]] = []
        self._bumped = False
        self._pinger = Pinger(notify_path(path)) if ping_agent else None
        try:
            make_private(path.parent)
            _create_private(path)
        except HomeError as err:
            raise StoreError(str(err)) from err
        except OSError as err:
            raise StoreError(f"cannot create {path}: {err.strerror or err}") from err
        try:
            self._db = sqlite3.connect(path, timeout=10.0, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA busy_timeout = 10000")
            self._db.execute("PRAGMA journal_mode = WAL")
            for suffix in ("", "-wal", "-shm"):
                make_private_file(path.with_name(path.name + suffix))
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._migrate()
        except sqlite3.DatabaseError as err:
            raise StoreError(
                f"{path} is not a usable meshnet database ({err}); "
                "move it aside to start with an empty store"
            ) from err

    @classmethod
    def open(cls, home: Path, ping_agent: bool = True) -> Store:
        """The store of a MESHNET_HOME."""
        return cls(home / "state.db", ping_agent)

    def close(self) -> None:
        """Close the connection."""
        self._db.close()
        if self._pinger is not None:
            self._pinger.close()

    def on_change(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` after every committed write of this connection that bumps
        the revision; returns a function that removes it."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback)

    def _changed(self) -> None:
        for callback in list(self._listeners):
            callback()
        if self._pinger is not None:
            self._pinger.ping()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema -------------------------------------------------------------------

    def _migrate(self) -> None:
        if self._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
            return  # current: no write lock (a short command only reads)
        with self._write():
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} was written by a newer meshnet (schema {version}, this "
                    f"version knows {SCHEMA_VERSION}); upgrade meshnet"
                )
            for number in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[number].split(";"):
                    if statement.strip():
                        self._db.execute(statement)
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @property
    def db(self) -> sqlite3.Connection:
        """The connection, for the store's table modules (store_admin.py)."""
        return self._db

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """A write transaction (BEGIN IMMEDIATE); bumps the revision so agents wake."""
        return self._write_bumping()

    @contextmanager
    def _write_bumping(self) -> Iterator[None]:
        with self._write():
            yield
            self._next_revision()

    @contextmanager
    def _write(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        self._bumped = False
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            self._bumped = False
            raise
        self._db.execute("COMMIT")
        if self._bumped:
            self._bumped = False
            self._changed()

    def _next_revision(self) -> int:
        self._bumped = True
        self._db.execute("UPDATE revision SET value = value + 1 WHERE id = 1")
        return int(self._db.execute("SELECT value FROM revision").fetchone()[0])

    def revision(self) -> int:
        """The store-wide revision: it changes on every write, by anyone (volatile
        writes aside)."""
        return int(self._db.execute("SELECT value FROM revision").fetchone()[0])

    def data_version(self) -> int:
        """SQLite's ``PRAGMA data_version``: it changes whenever another connection
        committed anything (volatile writes included), never on this one's writes."""
        return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    # -- objects ------------------------------------------------------------------

    def get(self, kind: str, name: str) -> MeshObject | None:
        """The object, or None."""
        row = self._db.execute(
            "SELECT * FROM objects WHERE kind = ? AND name = ?", (kind, name)
        ).fetchone()
        return None if row is None else self._from_row(row)

    def require(self, kind: str, name: str) -> MeshObject:
        """The object; NotFound if absent."""
        obj = self.get(kind, name)
        if obj is None:
            raise NotFound(f'{kind} "{name}" not found')
        return obj

    def list(self, kind: str | None = None) -> builtins.list[MeshObject]:
        """Every object of a kind (or of every kind), ordered by kind and name."""
        if kind is None:
            rows = self._db.execute("SELECT * FROM objects ORDER BY kind, name").fetchall()
        else:
            rows = self._db.execute(
                "SELECT * FROM objects WHERE kind = ? ORDER BY name", (kind,)
            ).fetchall()
        return [self._from_row(row) for row in rows]

    def versions(self, kind: str) -> dict[str, str]:
        """Every object of a kind: name -> resourceVersion (nothing parsed)."""
        rows = self._db.execute(
            "SELECT name, resource_version FROM objects WHERE kind = ? ORDER BY name", (kind,)
        ).fetchall()
        return {str(row[0]): str(row[1]) for row in rows}

    def apply(self, obj: MeshObject, source: str | None = None) -> tuple[MeshObject, ApplyOutcome]:
        """Create the object or update its spec, labels and annotations (never status)."""
        with self._write():
            row = self._row(obj.kind, obj.metadata.name)
            if row is None:
                outcome: ApplyOutcome = "created"
                self._insert(obj)
            else:
                self._check_version(obj, row)
                outcome = self._update(obj, row)
            if source is not None:
                self._db.execute(
                    "INSERT OR REPLACE INTO inventory VALUES (?, ?, ?)",
                    (obj.kind, obj.metadata.name, source),
                )
            elif outcome == "created":
                self._db.execute(
                    "DELETE FROM inventory WHERE kind = ? AND name = ?",
                    (obj.kind, obj.metadata.name),
                )
        return self.require(obj.kind, obj.metadata.name), outcome

    def create(self, obj: MeshObject, status: dict[str, Any] | None = None) -> MeshObject:
        """Create an object with an initial status in one write; Conflict if the name
        is taken (two writers creating the same name cannot both win)."""
        kind, name = obj.kind, obj.metadata.name
        with self._write():
            if self._row(kind, name) is not None:
                raise Conflict(f'{kind} "{name}" already exists')
            self._insert(obj)
            self._db.execute(
                "UPDATE objects SET status = ? WHERE kind = ? AND name = ?",
                (_dumps(status or {}), kind, name),
            )
            self._db.execute("DELETE FROM inventory WHERE kind = ? AND name = ?", (kind, name))
        return self.require(kind, name)

    def _insert(self, obj: MeshObject) -> None:
        revision = self._next_revision()
        meta = obj.metadata
        self._db.execute(
            "INSERT INTO objects VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?, ?)",
            (
                obj.kind, meta.name, str(uuid.uuid4()), revision, _dumps(meta.labels),
                _dumps(meta.annotations), _dumps(self._spec(obj)), "{}",
                isotime(utcnow()),
            ),
        )  # fmt: skip

    def _update(self, obj: MeshObject, row: sqlite3.Row) -> ApplyOutcome:
        spec, meta = _dumps(self._spec(obj)), obj.metadata
        labels, annotations = _dumps(meta.labels), _dumps(meta.annotations)
        if (spec, labels, annotations) == (row["spec"], row["labels"], row["annotations"]):
            return "unchanged"
        generation = row["generation"] + (1 if spec != row["spec"] else 0)
        self._db.execute(
            "UPDATE objects SET spec = ?, labels = ?, annotations = ?, generation = ?, "
            "resource_version = ? WHERE kind = ? AND name = ?",
            (spec, labels, annotations, generation, self._next_revision(), obj.kind, meta.name),
        )
        return "configured"

    def update_status(
        self, kind: str, name: str, status: dict[str, Any], resource_version: str | None = None
    ) -> MeshObject:
        """Replace an object's status (the agent's write); Conflict if the version is stale."""
        with self._write():
            row = self._row(kind, name)
            if row is None:
                raise NotFound(f'{kind} "{name}" not found')
            if resource_version is not None and str(row["resource_version"]) != resource_version:
                raise Conflict(f'{kind} "{name}" changed since resourceVersion {resource_version}')
            if _dumps(status) != row["status"]:
                self._db.execute(
                    "UPDATE objects SET status = ?, resource_version = ? "
                    "WHERE kind = ? AND name = ?",
                    (_dumps(status), self._next_revision(), kind, name),
                )
        return self.require(kind, name)

    def patch_status(self, kind: str, name: str, fields: dict[str, Any]) -> MeshObject:
        """Merge fields into an object's status in one transaction (the agent's writes
        that must not be lost to a concurrent writer)."""
        self._patch(kind, name, fields, volatile=False)
        return self.require(kind, name)

    def patch_volatile(self, kind: str, name: str, fields: dict[str, Any]) -> None:
        """Merge observed detail into an object's status (tokens as they stream, load
        progress) without changing its resourceVersion or the store's revision: the
        write wakes no controller. Readers see it at once; watchers through
        ``data_version()`` or the agent's local API."""
        self._patch(kind, name, fields, volatile=True)

    def _patch(self, kind: str, name: str, fields: dict[str, Any], volatile: bool) -> None:
        with self._write():
            row = self._row(kind, name)
            if row is None:
                raise NotFound(f'{kind} "{name}" not found')
            status = _dumps({**json.loads(row["status"]), **fields})
            if status == row["status"]:
                return
            if volatile:
                self._db.execute(
                    "UPDATE objects SET status = ? WHERE kind = ? AND name = ?",
                    (status, kind, name),
                )
            else:
                self._db.execute(
                    "UPDATE objects SET status = ?, resource_version = ? "
                    "WHERE kind = ? AND name = ?",
                    (status, self._next_revision(), kind, name),
                )

    def delete(self, kind: str, name: str, resource_version: str | None = None) -> bool:
        """Remove an object; False if it was not there."""
        with self._write():
            row = self._row(kind, name)
            if row is None:
                return False
            if resource_version is not None and str(row["resource_version"]) != resource_version:
                raise Conflict(f'{kind} "{name}" changed since resourceVersion {resource_version}')
            self._db.execute("DELETE FROM objects WHERE kind = ? AND name = ?", (kind, name))
            self._db.execute("DELETE FROM inventory WHERE kind = ? AND name = ?", (kind, name))
            self._next_revision()
        return True

    def _row(self, kind: str, name: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self._db.execute(
            "SELECT * FROM objects WHERE kind = ? AND name = ?", (kind, name)
        ).fetchone()
        return row

    @staticmethod
    def _check_version(obj: MeshObject, row: sqlite3.Row) -> None:
        wanted = obj.metadata.resource_version
        if wanted is not None and wanted != str(row["resource_version"]):
            raise Conflict(
                f'{obj.kind} "{obj.metadata.name}" was modified (resourceVersion '
                f"{row['resource_version']}, not {wanted}); get it again and retry"
            )

    @staticmethod
    def _spec(obj: MeshObject) -> dict[str, Any]:
        return obj.spec.model_dump(mode="json", by_alias=True, exclude_none=True)

    def documents(self, kind: str, name: str | None = None) -> builtins.list[dict[str, Any]]:
        """The stored documents of a kind (or the one named), ordered by name, without
        validating them through the models (what a quick `meshctl get` table needs)."""
        query, args = "SELECT * FROM objects WHERE kind = ? ORDER BY name", [kind]
        if name is not None:
            query, args = "SELECT * FROM objects WHERE kind = ? AND name = ?", [kind, name]
        return [self._document(row) for row in self._db.execute(query, args).fetchall()]

    @staticmethod
    def _document(row: sqlite3.Row) -> dict[str, Any]:
        return {
            "kind": row["kind"],
            "metadata": {
                "name": row["name"],
                "uid": row["uid"],
                "generation": row["generation"],
                "resourceVersion": str(row["resource_version"]),
                "creationTimestamp": row["created"],
                "labels": json.loads(row["labels"]),
                "annotations": json.loads(row["annotations"]),
            },
            "spec": json.loads(row["spec"]),
            "status": json.loads(row["status"]),
        }

    @staticmethod
    def _from_row(row: sqlite3.Row) -> MeshObject:
        from manifests import model_for

        return model_for(row["kind"]).model_validate(Store._document(row))
