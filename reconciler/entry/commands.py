"""The agent's own commands, added to meshctl's apps by the composition root: the agent
in the foreground (`meshctl agent`, `mesh start`), the relay and the control plane
(`meshctl relay`, `meshctl control-plane`). Each imports its server when it runs."""

from __future__ import annotations

from pathlib import Path

import typer

from meshctl.context import home

PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}


def agent(
    watch_dir: Path | None = typer.Option(
        None, "--watch-dir", help="Apply manifests from this folder and follow its changes."
    ),
    log_level: str = typer.Option("INFO", "--log-level", help="DEBUG, INFO, WARNING or ERROR."),
    api_port: int | None = typer.Option(
        None,
        "--api-port",
        min=0,
        max=65535,
        help="Serve the OpenAI-compatible API on this port (0: any free port; see api.port).",
    ),
    api_host: str = typer.Option(
        "127.0.0.1",
        "--api-host",
        help="Address of the API; 0.0.0.0 opens it to the LAN (plain HTTP: see the README).",
    ),
) -> None:
    """Run this device's agent in the foreground (Ctrl+C stops it)."""
    from reconciler.daemon import AgentOptions, run_agent

    options = AgentOptions(home(), watch_dir, log_level, api_port, api_host)
    raise typer.Exit(run_agent(options))


def relay(ctx: typer.Context) -> None:
    """Run a relay for this device's pools (same as mesh-relay; --help for its options)."""
    from reconciler.relay.cli import app as relay_app

    relay_app(args=ctx.args, prog_name="meshctl relay")


def control_plane(ctx: typer.Context) -> None:
    """Serve the pool's HTTP API (same as mesh-control-plane; --help for its options)."""
    from reconciler.controlplane.cli import app as control_plane_app

    control_plane_app(args=ctx.args, prog_name="meshctl control-plane")


def add_meshctl_commands(app: typer.Typer) -> None:
    from reconciler.entry.dashboard import dashboard

    app.command("agent")(agent)
    app.command("relay", context_settings=PASS_THROUGH, add_help_option=False)(relay)
    app.command("control-plane", context_settings=PASS_THROUGH, add_help_option=False)(
        control_plane
    )
    app.command("dashboard")(dashboard)


def add_mesh_commands(app: typer.Typer) -> None:
    app.command("start", help="Run this device's agent in the foreground (Ctrl+C stops it).")(agent)
