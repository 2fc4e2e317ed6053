"""apply, diff, get, describe, delete, events: the kubectl-like verbs."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from manifests import resolve_kind  # the models are imported where used: not by `get`
from meshctl.context import CliError, friendly, open_store, option_output
from meshctl.jobplan_view import describe_job_extras
from meshctl.observed_cmd import (
    OBSERVED_KINDS,
    describe_pool_extras,
    peers,
    print_peers,
    print_rings,
    rings,
)
from meshctl.render import (
    OUTPUT_FORMATS,
    age,
    console,
    dump,
    emit,
    err_console,
    markup_escape,
    print_objects,
    print_table,
    table,
)
from meshctl.storewatch import store_moves, watch_kind
from reconciler.store import Store

if TYPE_CHECKING:
    from manifests import MeshObject

def _check_format(fmt: str) -> None:
    if fmt not in OUTPUT_FORMATS:
        raise CliError(f"unknown output format {fmt!r}; use one of {', '.join(OUTPUT_FORMATS)}")


def _ref(obj: MeshObject) -> str:
    return f"{obj.kind.lower()}/{obj.metadata.name}"


@friendly
def apply(
    filename: Path = typer.Option(..., "-f", "--filename", help="File, folder, or - for stdin."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate and show; change nothing."),
    output: str = typer.Option("", "-o", "--output", help="Print applied objects as yaml or json."),
) -> None:
    """Create or update objects from manifests (all or nothing per invocation)."""
    from manifests.loader import load_manifests  # ruamel.yaml: only where files are read

    loaded = load_manifests(filename)
    results = []
    with open_store() as store:
        for item in loaded:
            if dry_run:
                existing = store.get(item.obj.kind, item.obj.metadata.name)
                outcome = "created" if existing is None else _dry_outcome(existing, item.obj)
                results.append((item.obj, f"{outcome} (dry run)"))
            else:
                obj, outcome = store.apply(item.obj)
                results.append((obj, outcome))
    if output in ("json", "yaml"):
        emit(dump(_as_output([obj for obj, _ in results]), output))
        return
    for obj, outcome in results:
        console.print(f"{_ref(obj)} {outcome}", highlight=False)


def _dry_outcome(existing: MeshObject, new: MeshObject) -> str:
    return "unchanged" if _comparable(existing) == _comparable(new) else "configured"


def _comparable(obj: MeshObject) -> dict[str, Any]:
    from manifests import to_document

    doc = to_document(obj)
    meta = doc.get("metadata", {})
    assert isinstance(meta, dict)
    return {
        "metadata": {k: meta.get(k, {}) for k in ("labels", "annotations")},
        "spec": doc.get("spec", {}),
    }


def _as_output(objects: list[MeshObject]) -> Any:
    from manifests import to_document

    documents = [to_document(o) for o in objects]
    return (
        documents[0]
        if len(documents) == 1
        else {"apiVersion": "v1", "kind": "List", "items": documents}
    )


def diff(
    filename: Path = typer.Option(..., "-f", "--filename", help="File, folder, or - for stdin."),
) -> None:
    """Show what apply would change. Exit 0: no change; 1: changes; >1: error."""
    try:
        from manifests.loader import load_manifests

        loaded = load_manifests(filename)
        with open_store() as store:
            changed = False
            for item in loaded:
                existing = store.get(item.obj.kind, item.obj.metadata.name)
                old = dump(_comparable(existing), "yaml").splitlines() if existing else []
                new = dump(_comparable(item.obj), "yaml").splitlines()
                lines = list(
                    difflib.unified_diff(
                        old, new, f"live/{_ref(item.obj)}", f"merged/{_ref(item.obj)}", lineterm=""
                    )
                )
                if lines:
                    changed = True
                    emit("\n".join(lines))
    except Exception as err:  # kubectl: any error is exit code > 1
        err_console.print(f"[red]error:[/red] {escape(str(err))}", highlight=False)
        raise typer.Exit(2) from err
    raise typer.Exit(1 if changed else 0)


@friendly
def get(
    kind: str = typer.Argument(..., help="pools, members, jobs (po, mem, job); peers, ring."),
    name: str | None = typer.Argument(None, help="One object's name (for peers/ring: a pool)."),
    output: str = option_output(),
    watch: bool = typer.Option(False, "-w", "--watch", help="Keep printing changes."),
) -> None:
    """List objects of a kind, or show one. Also `get peers` and `get ring` (observed)."""
    _check_format(output)
    if kind.lower() in OBSERVED_KINDS:
        with open_store() as store:
            if OBSERVED_KINDS[kind.lower()] == "peers":
                print_peers(peers(store, name), output)
            else:
                print_rings(rings(store, name), output)
        return
    canonical = resolve_kind(kind)
    with open_store() as store:
        _print_get(store, canonical, name, output)
        if watch:
            _watch(store, canonical, name, output)


def _print_get(store: Store, kind: str, name: str | None, output: str) -> None:
    if output in ("table", "wide"):  # the stored documents: no need to build the models
        documents = store.documents(kind, name)
        if name is not None and not documents:
            store.require(kind, name)  # NotFound, as below
        print_table(kind, documents, output)
        return
    from manifests import model_for

    model = model_for(kind)
    if name is not None:
        print_objects(model, [store.require(kind, name)], output, single=True)
    else:
        print_objects(model, store.list(kind), output)


def _watch(store: Store, kind: str, name: str | None, output: str) -> None:
    try:
        watch_kind(store, kind, name, output, store_moves(store))
    except KeyboardInterrupt:
        return


@friendly
def describe(
    kind: str = typer.Argument(..., help="pool, member or job."),
    name: str = typer.Argument(..., help="The object's name."),
    output: str = typer.Option("text", "-o", "--output", help="text or json."),
) -> None:
    """Show one object in detail: spec, status, conditions and recent events."""
    canonical = resolve_kind(kind)
    with open_store() as store:
        obj = store.require(canonical, name)
        events = store.events(canonical, name, limit=20)
        extra = describe_pool_extras(store, name) if canonical == "Pool" else None
    from manifests import to_document

    doc = to_document(obj)
    if output not in ("text", "json"):
        raise CliError(f"-o must be text or json, not {output!r}")
    if output == "json":  # the object as stored: its status carries the job's plan
        emit(dump(doc, "json"))
        return
    if canonical == "Job":
        job_status = doc.get("status")
        extra = describe_job_extras(job_status if isinstance(job_status, dict) else {})
    console.print(
        f"[bold]Name:[/bold] {markup_escape(obj.metadata.name)}    [bold]Kind:[/bold] {obj.kind}"
    )
    console.print(
        f"[bold]UID:[/bold] {obj.metadata.uid}    [bold]Generation:[/bold] "
        f"{obj.metadata.generation}    [bold]Age:[/bold] {age(obj.metadata.creation_timestamp)}"
    )
    console.print("[bold]Spec:[/bold]")
    console.print(escape(dump(doc.get("spec", {}), "yaml")).rstrip(), highlight=False)
    raw_status = doc.get("status", {})
    assert isinstance(raw_status, dict)
    status = {k: v for k, v in raw_status.items() if k != "conditions"}
    if status:
        console.print("[bold]Status:[/bold]")
        console.print(escape(dump(status, "yaml")).rstrip(), highlight=False)
    rows = [
        [c.type, c.status, c.reason, c.message, age(c.last_transition_time)]
        for c in obj.status.conditions
    ]
    console.print("[bold]Conditions:[/bold]" + ("" if rows else " <none>"))
    if rows:
        console.print(table(rows, ["TYPE", "STATUS", "REASON", "MESSAGE", "SINCE"]))
    console.print("[bold]Events:[/bold]" + ("" if events else " <none>"))
    if events:
        rows = [[e.type, e.reason, age(e.last_seen), f"x{e.count}", e.message] for e in events]
        console.print(table(rows, ["TYPE", "REASON", "AGE", "COUNT", "MESSAGE"]))
    if extra is not None:
        extra()


@friendly
def delete(
    kind: str | None = typer.Argument(None, help="Kind of the object to delete."),
    name: str | None = typer.Argument(None, help="Name of the object to delete."),
    filename: Path | None = typer.Option(
        None, "-f", "--filename", help="Delete what a file defines."
    ),
) -> None:
    """Delete objects named in a file, or one object by kind and name."""
    if filename is not None:
        from manifests.loader import load_manifests

        targets: list[tuple[str, str]] = [
            (i.obj.kind, i.obj.metadata.name) for i in load_manifests(filename)
        ]
    elif kind is not None and name is not None:
        targets = [(resolve_kind(kind), name)]
    else:
        raise CliError("give -f FILE, or KIND and NAME")
    with open_store() as store:
        for target_kind, target_name in targets:
            ref = f"{target_kind.lower()}/{target_name}"
            if store.delete(target_kind, target_name):
                console.print(f"{ref} deleted", highlight=False)
            else:
                err_console.print(f"{ref} not found", highlight=False)


@friendly
def events(
    kind: str | None = typer.Argument(None, help="Only events of this kind..."),
    name: str | None = typer.Argument(None, help="...and this name."),
    output: str = option_output(),
    limit: int = typer.Option(50, "--limit", help="How many of the latest events."),
) -> None:
    """List recent events, oldest first."""
    _check_format(output)
    canonical = resolve_kind(kind) if kind else None
    with open_store() as store:
        found = store.events(canonical, name, limit=limit)
    if output in ("json", "yaml"):
        items = [e.__dict__ for e in found]
        emit(dump({"apiVersion": "v1", "kind": "List", "items": items}, output))
        return
    rows = [
        [age(e.last_seen), e.type, e.reason, f"{e.kind.lower()}/{e.name}", e.count, e.message]
        for e in found
    ]
    if not rows:
        err_console.print("No events found.")
        return
    console.print(table(rows, ["LAST SEEN", "TYPE", "REASON", "OBJECT", "COUNT", "MESSAGE"]))
