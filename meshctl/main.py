"""meshctl: the kubectl-like command line of meshnet. The agent's own commands (agent,
relay, control-plane, dashboard) are added by the composition root, reconciler/entry."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from meshctl.context import State, friendly, home, new_app
from reconciler.home import Home

# The CLI uses no pydantic plugins: skip their discovery (a scan of every installed
# package's entry points) when the manifests' models are built.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

# Imported when they run (meshctl/lazy.py): a short command pays only for its own imports.
LAZY_COMMANDS = {
    "token": "meshctl.admin_cmd:token_app",
    "certificate": "meshctl.admin_cmd:certificate_app",
    "member": "meshctl.admin_cmd:member_app",
    "apikey": "meshctl.apikey_cmd:apikey_app",
    "doctor": "meshctl.doctor:doctor",
    "logs": "meshctl.jobs_cmd:logs",
    "apply": "meshctl.objects_cmd:apply",
    "diff": "meshctl.objects_cmd:diff",
    "get": "meshctl.objects_cmd:get",
    "describe": "meshctl.objects_cmd:describe",
    "delete": "meshctl.objects_cmd:delete",
    "events": "meshctl.objects_cmd:events",
}

app = new_app(
    "meshctl",
    "Declare a pool of LAN devices that serve LLM inference, and watch it converge.",
    lazy=LAZY_COMMANDS,
)


@app.callback()
def _main(
    home_dir: Path | None = typer.Option(
        None, "--home", envvar="MESHNET_HOME", help="Device state folder (default ~/.meshnet)."
    ),
) -> None:
    if home_dir is not None:
        State.home = Home(home_dir.expanduser())
        os.environ["MESHNET_HOME"] = str(State.home.root)  # for the services below


def meshnet_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("meshnet")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"


@app.command("init")
@friendly
def init(
    network_id: str = typer.Option("default", "--network-id", help="Network this device joins."),
    name: str = typer.Option(..., "--name", help="A name for this device."),
    force: bool = typer.Option(False, "--force", help="Replace an existing identity."),
    output: str = typer.Option("text", "-o", "--output", help="text or json."),
) -> None:
    """Make this device's identity (an Ed25519 key that never leaves it)."""
    from meshctl.render import console, emit
    from reconciler.node import init_node

    config = init_node(home(), network_id, name, force)
    if output == "json":
        document = {
            "nodeId": config.node_id,
            "name": config.name,
            "networkId": config.network_id,
            "fingerprint": config.fingerprint,
        }
        emit(json.dumps(document))
        return
    console.print(f"Initialised device [bold]{config.name}[/bold] in {home().root}")
    console.print(f"Node ID:     {config.node_id}", highlight=False)
    console.print(f"Network ID:  {config.network_id}", highlight=False)
    console.print(f"Fingerprint: {config.fingerprint}", highlight=False)


@app.command("version")
def version_cmd(output: str = typer.Option("text", "-o", "--output", help="text or json.")) -> None:
    """Print the version."""
    if output == "json":
        typer.echo(json.dumps({"meshnet": meshnet_version(), "apiVersion": "meshnet.dev/v1alpha1"}))
    else:
        typer.echo(f"meshctl {meshnet_version()} (API meshnet.dev/v1alpha1)")


@app.command("schema")
@friendly
def schema(
    kind: str | None = typer.Argument(None, help="Pool, Member or Job; default all."),
) -> None:
    """Print the JSON Schema of the manifests (for editors' YAML completion)."""
    from manifests import resolve_kind
    from manifests.schema import all_schemas, kind_schema
    from meshctl.render import emit

    data = kind_schema(resolve_kind(kind)) if kind else all_schemas()
    emit(json.dumps(data, indent=2))
