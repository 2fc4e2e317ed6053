"""``mesh-control-plane``: run the HTTP control plane (also ``meshctl control-plane``).

Uses the first free port of ``--port .. --port-range-end``, prints the URL it serves
and records the port in ``$MESHNET_HOME/control-plane.port``. Logs to
``$MESHNET_HOME/logs/control-plane.log``. SIGINT/SIGTERM stop it cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import typer

from reconciler.controlplane.serve import DEFAULT_PORT, DEFAULT_RANGE_END, ControlPlane, NoFreePort
from reconciler.drivers.service_tls import wait_for_pools
from reconciler.home import Home
from reconciler.logsetup import setup_logging

log = logging.getLogger("meshnet.control-plane")
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    port: int = typer.Option(DEFAULT_PORT, "--port", help="First port to try."),
    host: str = typer.Option("0.0.0.0", "--host", help="Address to listen on."),
    port_range_end: int = typer.Option(DEFAULT_RANGE_END, "--port-range-end", help="Last port."),
    log_level: str = typer.Option("INFO", "--log-level", help="DEBUG, INFO, WARNING or ERROR."),
    api_lan: bool = typer.Option(
        False, "--api-lan", help="Accept API keys from the LAN too (default: this device only)."
    ),
) -> None:
    """Serve the pool's HTTP API (join, pool, peers, ring, jobs)."""
    home = Home.default()
    setup_logging(home, "control-plane", log_level)
    try:
        wait_for_pools(home, "controlplane", None)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    plane = ControlPlane(home, host, port, port_range_end, api_lan=api_lan)
    if not plane.pools:
        typer.echo("mesh-control-plane: no pool to serve (no usable pools/*/ca.crt)", err=True)
        raise typer.Exit(2)
    try:
        asyncio.run(_serve(plane))
    except NoFreePort as err:
        typer.echo(f"mesh-control-plane: {err}", err=True)
        raise typer.Exit(1) from err


async def _serve(plane: ControlPlane) -> None:
    chosen = await plane.start()
    shown = "127.0.0.1" if plane.host in ("0.0.0.0", "::") else plane.host
    names = ", ".join(f"{p.name} ({p.anchor.pool_id})" for p in plane.pools)
    log.info("control plane on %s:%d for %s", plane.host, chosen, names)
    typer.echo(f"mesh-control-plane listening on https://{shown}:{chosen}")
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, plane.request_stop)
    await plane.wait()
    log.info("control plane stopped")
