"""Rendering objects for people (rich tables) and programs (JSON, YAML)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.text import Text

from reconciler.textsafe import printable

if TYPE_CHECKING:  # rich.table and the models: imported where used
    from rich.table import Table

    from manifests import MeshObject

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


Document = dict[str, Any]  # an object as users see it: camelCase keys, no nulls


def _field(doc: Document, *path: str) -> Any:
    """A nested field of a document, or None."""
    value: Any = doc
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _ready(doc: Document) -> Document | None:
    conditions = _field(doc, "status", "conditions") or []
    return next((c for c in conditions if isinstance(c, dict) and c.get("type") == "Ready"), None)


def ready_text(doc: Document) -> str:
    condition = _ready(doc)
    if condition is None:
        return "Unknown"
    return "True" if condition.get("status") == "True" else f"False ({condition.get('reason', '')})"


def reason_text(doc: Document) -> str:
    condition = _ready(doc)
    return str(condition.get("reason", "")) if condition is not None else "-"


def short_fingerprint(value: str | None) -> str:
    """sha256: and the first 16 hex digits (what `certificate approve --fingerprint`
    accepts at least)."""
    return value[: len("sha256:") + 16] if value else "-"


def _or_dash(*path: str) -> Callable[[Document], Any]:
    return lambda d: _field(d, *path) or "-"


def _expires(doc: Document) -> str:
    value = _field(doc, "status", "notAfter")
    return datetime.fromisoformat(value).isoformat() if value else "-"


def _tokens(doc: Document) -> Any:
    value = _field(doc, "status", "completionTokens")
    return value if value is not None else "-"


def _speed(doc: Document) -> str:
    value = _field(doc, "status", "tokensPerSecond")
    return f"{value:.1f}" if value else "-"


def _age(doc: Document) -> str:
    return age(_field(doc, "metadata", "creationTimestamp"))


Column = tuple[str, Callable[[Document], Any]]

_POOL: list[Column] = [
    ("NAME", _or_dash("metadata", "name")),
    ("ROLE", _or_dash("status", "role")),
    ("POOL ID", _or_dash("status", "poolId")),
    ("ADMISSION", lambda d: _field(d, "spec", "admission")),
    ("MEMBERS", lambda d: len(_field(d, "status", "members") or [])),
    ("READY", ready_text),
    ("AGE", _age),
]
_POOL_WIDE: list[Column] = [
    ("NETWORK", lambda d: _field(d, "spec", "networkId")),
    ("ROOT FINGERPRINT", _or_dash("status", "rootFingerprint")),
]
_MEMBER: list[Column] = [
    ("NAME", _or_dash("metadata", "name")),
    ("POOL", lambda d: _field(d, "spec", "pool", "name")),
    ("PHASE", _or_dash("status", "phase")),
    ("NODE", _or_dash("status", "nodeId")),
    ("KEY", lambda d: short_fingerprint(_field(d, "status", "keyFingerprint"))),
    ("READY", ready_text),
    ("AGE", _age),
]
_MEMBER_WIDE: list[Column] = [
    ("KEY FINGERPRINT", _or_dash("status", "keyFingerprint")),
    ("POOL ID", lambda d: _field(d, "spec", "pool", "id")),
    ("EXPIRES", _expires),
]
_JOB: list[Column] = [
    ("NAME", _or_dash("metadata", "name")),
    ("POOL", lambda d: _field(d, "spec", "pool")),
    ("PHASE", _or_dash("status", "phase")),
    ("TOKENS", _tokens),
    ("TOK/S", _speed),
    ("AGE", _age),
]
_JOB_WIDE: list[Column] = [
    ("MODEL", lambda d: _field(d, "spec", "model")),
    ("PLAN", _or_dash("status", "plan", "kind")),
    ("REASON", reason_text),
]

COLUMNS: dict[str, tuple[list[Column], list[Column]]] = {
    "Pool": (_POOL, _POOL_WIDE),
    "Member": (_MEMBER, _MEMBER_WIDE),
    "Job": (_JOB, _JOB_WIDE),
}


def safe(value: object) -> Text:
    """A cell or line as plain text: no Rich markup, no control characters (names,
    reasons and messages may come from peers or anonymous join requests)."""
    return Text(printable(str(value), limit=100_000) if str(value) else "")


def markup_escape(value: object) -> str:
    """A peer-supplied string to embed in a markup string (``f"[bold]{x}[/bold]"``)."""
    return escape(printable(str(value), limit=100_000)) if str(value) else ""


def table(
    rows: Sequence[Sequence[Any]],
    headers: Sequence[str],
    title: str | None = None,
    show_header: bool = True,
) -> Table:
    """A plain kubectl-like table; every cell is shown as plain text."""
    from rich.table import Table

    out = Table(box=None, pad_edge=False, show_edge=False, title=title, header_style="bold",
                show_header=show_header)  # fmt: skip
    for header in headers:
        out.add_column(header, overflow="fold")
    for row in rows:
        out.add_row(*(safe(cell) for cell in row))
    return out


def object_table(
    kind: str, documents: Sequence[Document], wide: bool, header: bool = True
) -> Table:
    """The table of `meshctl get KIND` (`kind` canonical: Pool, Member, Job)."""
    base, extra = COLUMNS[kind]
    columns = base + (extra if wide else [])
    rows = [[fn(doc) for _, fn in columns] for doc in documents]
    return table(rows, [name for name, _ in columns], show_header=header)


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
    kind: type,
    objects: Sequence[MeshObject],
    fmt: str,
    single: bool = False,
    header: bool = True,
) -> None:
    """Print objects as a table (``header``: with its column names), or as JSON/YAML (a
    List unless one object was named)."""
    from manifests import to_document

    documents = [to_document(obj) for obj in objects]
    if fmt in ("json", "yaml"):
        data = documents[0] if single and documents else as_list(documents)
        emit(dump(data, fmt))
    else:
        print_table(kind.__name__, documents, fmt, header)


def print_table(kind: str, documents: Sequence[Document], fmt: str, header: bool = True) -> None:
    """Print documents of a canonical kind as a table (`wide`: more columns; ``header``:
    with the column names, as the first listing of `get -w` but not its changes)."""
    if not documents:
        err_console.print("No resources found.")
    else:
        console.print(object_table(kind, documents, wide=fmt == "wide", header=header))
