"""Rendering objects for people (rich tables) and programs (JSON, YAML)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from manifests import Job, Member, MeshObject, Pool, to_document
from reconciler.textsafe import printable

# Off a terminal, long lines (fingerprints, file:line errors) are not folded.
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 250)
err_console = Console(stderr=True, soft_wrap=True, width=None if sys.stderr.isatty() else 250)

OUTPUT_FORMATS = ("table", "wide", "yaml", "json")


def age(timestamp: datetime | str | None, now: datetime | None = None) -> str:
    """Kubernetes-style age: 5s, 3m, 2h, 4d."""
    if timestamp is None:
        return "-"
    if isinstance(timestamp, str):
        timestamp = datetime.fromisoformat(timestamp)
    seconds = int(((now or datetime.now(UTC)) - timestamp).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def ready_text(obj: MeshObject) -> str:
    condition = obj.status.condition("Ready")
    if condition is None:
        return "Unknown"
    return "True" if condition.status == "True" else f"False ({condition.reason})"


def reason_text(obj: MeshObject) -> str:
    condition = obj.status.condition("Ready")
    return condition.reason if condition is not None else "-"


def short_fingerprint(value: str | None) -> str:
    """sha256: and the first 16 hex digits (what `certificate approve --fingerprint`
    accepts at least)."""
    return value[: len("sha256:") + 16] if value else "-"


Column = tuple[str, Callable[[Any], Any]]

_POOL: list[Column] = [
    ("NAME", lambda o: o.metadata.name),
    ("ROLE", lambda o: o.status.role or "-"),
    ("POOL ID", lambda o: o.status.pool_id or "-"),
    ("ADMISSION", lambda o: o.spec.admission),
    ("MEMBERS", lambda o: len(o.status.members)),
    ("READY", ready_text),
    ("AGE", lambda o: age(o.metadata.creation_timestamp)),
]
_POOL_WIDE: list[Column] = [
    ("NETWORK", lambda o: o.spec.network_id),
    ("ROOT FINGERPRINT", lambda o: o.status.root_fingerprint or "-"),
]
_MEMBER: list[Column] = [
    ("NAME", lambda o: o.metadata.name),
    ("POOL", lambda o: o.spec.pool.name),
    ("PHASE", lambda o: o.status.phase or "-"),
    ("NODE", lambda o: o.status.node_id or "-"),
    ("KEY", lambda o: short_fingerprint(o.status.key_fingerprint)),
    ("READY", ready_text),
    ("AGE", lambda o: age(o.metadata.creation_timestamp)),
]
_MEMBER_WIDE: list[Column] = [
    ("KEY FINGERPRINT", lambda o: o.status.key_fingerprint or "-"),
    ("POOL ID", lambda o: o.spec.pool.id),
    ("EXPIRES", lambda o: o.status.not_after.isoformat() if o.status.not_after else "-"),
]
_JOB: list[Column] = [
    ("NAME", lambda o: o.metadata.name),
    ("POOL", lambda o: o.spec.pool),
    ("PHASE", lambda o: o.status.phase or "-"),
    (
        "TOKENS",
        lambda o: o.status.completion_tokens if o.status.completion_tokens is not None else "-",
    ),
    ("TOK/S", lambda o: f"{o.status.tokens_per_second:.1f}" if o.status.tokens_per_second else "-"),
    ("AGE", lambda o: age(o.metadata.creation_timestamp)),
]
_JOB_WIDE: list[Column] = [
    ("MODEL", lambda o: o.spec.model),
    ("REASON", lambda o: reason_text(o)),
]

COLUMNS: dict[type, tuple[list[Column], list[Column]]] = {
    Pool: (_POOL, _POOL_WIDE),
    Member: (_MEMBER, _MEMBER_WIDE),
    Job: (_JOB, _JOB_WIDE),
}


def safe(value: object) -> Text:
    """A cell or line as plain text: no Rich markup, no control characters (names,
    reasons and messages may come from peers or anonymous join requests)."""
    return Text(printable(str(value), limit=100_000) if str(value) else "")


def markup_escape(value: object) -> str:
    """A peer-supplied string to embed in a markup string (``f"[bold]{x}[/bold]"``)."""
    return escape(printable(str(value), limit=100_000)) if str(value) else ""


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str], title: str | None = None) -> Table:
    """A plain kubectl-like table; every cell is shown as plain text."""
    out = Table(box=None, pad_edge=False, show_edge=False, title=title, header_style="bold")
    for header in headers:
        out.add_column(header, overflow="fold")
    for row in rows:
        out.add_row(*(safe(cell) for cell in row))
    return out


def object_table(kind: type, objects: Sequence[MeshObject], wide: bool) -> Table:
    base, extra = COLUMNS[kind]
    columns = base + (extra if wide else [])
    rows = [[fn(obj) for _, fn in columns] for obj in objects]
    return table(rows, [name for name, _ in columns])


def as_list(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "List", "items": items}


def dump(data: Any, fmt: str) -> str:
    """JSON (indented) or YAML text of plain data."""
    if fmt == "json":
        return json.dumps(data, indent=2, default=str)
    import yaml

    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)


def emit(text: str) -> None:
    """Machine-readable output, unwrapped and uncoloured."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def print_objects(
    kind: type, objects: Sequence[MeshObject], fmt: str, single: bool = False
) -> None:
    """Print objects as a table, or as JSON/YAML (a List unless one object was named)."""
    if fmt in ("json", "yaml"):
        documents = [to_document(obj) for obj in objects]
        data = documents[0] if single and documents else as_list(documents)
        emit(dump(data, fmt))
    elif not objects:
        err_console.print("No resources found.")
    else:
        console.print(object_table(kind, objects, wide=fmt == "wide"))
