"""mesh: the seed quick start's verbs, on top of the same store and agent as meshctl
(`mesh start` is added by the composition root, reconciler/entry)."""

from __future__ import annotations

import typer

from manifests import Pool, to_document
from manifests.pool import PoolSpec
from meshctl.agentops import reconcile_now
from meshctl.chat_cmd import chat
from meshctl.context import CliError, friendly, home, new_app, open_store
from meshctl.demo import demo
from meshctl.doctor import doctor
from meshctl.inference_cmd import inference
from meshctl.jobs_cmd import inference_stats
from meshctl.join_cmd import pool_join
from meshctl.main import _main, init, version_cmd
from meshctl.observed_cmd import peers, print_peers, print_rings, rings
from meshctl.poolinfo_cmd import pool_info
from meshctl.render import console, dump, emit, print_objects
from reconciler.store import Store

app = new_app(
    "mesh",
    "meshnet's quick-start commands (see also meshctl for the declarative API).",
)
app.callback()(_main)
app.command("init")(init)
app.command("version")(version_cmd)
app.command("demo")(demo)
app.command("doctor")(doctor)


@app.command("pool-create")
@friendly
def pool_create(
    name: str = typer.Option(..., "--name", help="The pool's name."),
    admission: str = typer.Option("token", "--admission", help="token, approve or auto."),
    network_id: str | None = typer.Option(None, "--network-id", help="Default: the device's."),
    output: str = typer.Option("text", "-o", "--output", help="text, yaml or json."),
) -> None:
    """Create a pool with this device as its admin; prints the Pool ID and root key."""
    from reconciler.node import load_node_config

    node = load_node_config(home())
    spec = PoolSpec.model_validate(
        {"admission": admission, "networkId": network_id or node.network_id}
    )
    pool = Pool.model_validate({"metadata": {"name": name}, "spec": spec.model_dump(by_alias=True)})
    with open_store() as store:
        if store.get("Pool", name) is not None:
            raise CliError(f"a pool named {name!r} already exists on this device (mesh pool-list)")
        store.apply(pool)
        reconcile_now(home(), store, "Pool", name)
        created = store.require("Pool", name)
    assert isinstance(created, Pool)
    if output in ("yaml", "json"):
        emit(dump(to_document(created), output))
        return
    status = created.status
    if status.pool_id is None:
        ready = created.status.condition("Ready")
        raise CliError(f"pool not created: {ready.message if ready else 'unknown reason'}")
    console.print(f"Pool [bold]{name}[/bold] created; this device is its admin.")
    console.print(f"Pool ID:              {status.pool_id}", highlight=False)
    console.print(f"Pool Root Public Key: {status.root_fingerprint}", highlight=False)


@app.command("pool-list")
@friendly
def pool_list(
    output: str = typer.Option("table", "-o", "--output", help="table, wide, yaml, json."),
) -> None:
    """List the pools this device belongs to."""
    with open_store() as store:
        print_objects(Pool, store.list("Pool"), output)


app.command("pool-join")(pool_join)
app.command("pool-info")(pool_info)
app.command("inference")(inference)
app.command("chat")(chat)
app.command("inference-stats")(inference_stats)


def _pool_by_id(store: Store, pool_id: str | None) -> str | None:
    if pool_id is None:
        return None
    for pool in store.list("Pool"):
        if isinstance(pool, Pool) and pool_id in (pool.status.pool_id, pool.metadata.name):
            return pool.metadata.name
    raise CliError(f"this device knows no pool with ID {pool_id} (mesh pool-list)")


@app.command("pool-peers")
@friendly
def pool_peers(
    pool_id: str | None = typer.Option(None, "--pool-id", help="Pool ID (default: every pool)."),
    output: str = typer.Option("table", "-o", "--output", help="table, wide, yaml or json."),
) -> None:
    """The other members this device sees: node ID, LAN address, status, last seen."""
    with open_store() as store:
        print_peers(peers(store, _pool_by_id(store, pool_id)), output)


@app.command("ring-status")
@friendly
def ring_status(
    pool_id: str | None = typer.Option(None, "--pool-id", help="Pool ID (default: every pool)."),
    output: str = typer.Option("table", "-o", "--output", help="table, yaml or json."),
) -> None:
    """The ring: members in order, their positions and column ranges, convergence."""
    with open_store() as store:
        print_rings(rings(store, _pool_by_id(store, pool_id)), output)


@app.command("pool-status")
@friendly
def pool_status(
    pool_id: str | None = typer.Option(None, "--pool-id", help="Pool ID (default: every pool)."),
) -> None:
    """Pools, their members, the ring and its health."""
    with open_store() as store:
        name = _pool_by_id(store, pool_id)
        pools = [p for p in store.list("Pool") if name is None or p.metadata.name == name]
        print_objects(Pool, pools, "wide")
        for pool in pools:
            assert isinstance(pool, Pool)
            for cond in pool.status.conditions:
                line = f"  {cond.type}={cond.status} {cond.reason}: {cond.message}"
                console.print(line, highlight=False)
        print_peers(peers(store, name), "table")
        print_rings(rings(store, name), "table")


__all__ = ["app"]
