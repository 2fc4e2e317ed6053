"""`meshctl apikey create | list | delete`: keys for OpenAI-API clients outside the pool."""

from __future__ import annotations

import json

import typer

from meshctl.context import CliError, friendly, open_store
from meshctl.render import console, emit, err_console, table
from reconciler.apikeys import ApiKey, create_key, delete_key, list_keys

apikey_app = typer.Typer(
    help="API keys for the OpenAI-compatible API (Authorization: Bearer KEY).",
    no_args_is_help=True,
)


def _doc(key: ApiKey) -> dict[str, str | None]:
    return {"name": key.name, "id": key.key_id, "pool": key.pool, "created": key.created}


@apikey_app.command("create")
@friendly
def apikey_create(
    name: str = typer.Argument(..., help="A name for the key (for list and delete)."),
    pool: str | None = typer.Option(None, "--pool", help="Pool its requests run on."),
    output: str = typer.Option("text", "-o", "--output", help="text or json."),
) -> None:
    """Make an API key; it is shown this once (only its SHA-256 is stored)."""
    with open_store() as store:
        if pool is not None and store.get("Pool", pool) is None:
            raise CliError(f"no pool named {pool!r} on this device (mesh pool-list)")
        key, record = create_key(store, name, pool)
    if output == "json":
        emit(json.dumps({**_doc(record), "key": key}))
        return
    emit(key)
    err_console.print(
        f"API key {name!r} created; it is shown only now. Use it as `Authorization: Bearer KEY`."
    )


@apikey_app.command("list")
@friendly
def apikey_list(
    output: str = typer.Option("table", "-o", "--output", help="table or json."),
) -> None:
    """List API keys (names and IDs; the keys themselves are never stored)."""
    with open_store() as store:
        keys = list_keys(store)
    if output == "json":
        emit(json.dumps({"items": [_doc(k) for k in keys]}))
        return
    rows = [[k.name, f"mesh_{k.key_id}_…", k.pool or "-", k.created] for k in keys]
    console.print(table(rows, ["NAME", "KEY", "POOL", "CREATED"]))


@apikey_app.command("delete")
@friendly
def apikey_delete(name: str = typer.Argument(..., help="The key's name.")) -> None:
    """Revoke an API key (its next request is refused)."""
    with open_store() as store:
        if not delete_key(store, name):
            raise CliError(f"no API key named {name!r} (meshctl apikey list)")
    console.print(f"API key {name!r} deleted")
