"""``mesh-relay``: run the relay in the foreground (also ``meshctl relay``).

Serves every pool whose root certificate it is given (``--pool-ca``, repeatable;
default every ``$MESHNET_HOME/pools/*/ca.crt``), with the server certificate described
in drivers/service_tls.py. Logs to ``$MESHNET_HOME/logs/relay.log``. SIGINT/SIGTERM stop it
cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from pathlib import Path

import typer

from reconciler.drivers.service_tls import load_served_pools, wait_for_pools
from reconciler.home import Home, write_atomic
from reconciler.logsetup import setup_logging
from reconciler.relay.core import RelayLimits
from reconciler.relay.server import RelayServer

log = logging.getLogger("meshnet.relay")
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
DEFAULTS = RelayLimits()
PORT_FILE = "relay.port"


@app.command()
def main(
    port: int = typer.Option(4001, "--port", help="TCP port to listen on."),
    host: str = typer.Option("0.0.0.0", "--host", help="Address to listen on."),
    pool_ca: list[Path] | None = typer.Option(  # noqa: B008
        None, "--pool-ca", help="Root certificate of a pool to serve (repeat; default: all)."
    ),
    max_reservations: int = typer.Option(DEFAULTS.max_reservations, help="Reservations held."),
    max_circuits: int = typer.Option(DEFAULTS.max_circuits_per_member, help="Circuits per member."),
    max_circuit_bytes: int = typer.Option(DEFAULTS.max_circuit_bytes, help="Bytes per circuit."),
    max_circuit_seconds: float = typer.Option(DEFAULTS.max_circuit_seconds, help="Circuit life."),
    queue_frames: int = typer.Option(DEFAULTS.queue_frames, help="Frames queued per client."),
    queue_timeout: float = typer.Option(DEFAULTS.queue_timeout, help="Seconds a full queue waits."),
    log_level: str = typer.Option("INFO", "--log-level", help="DEBUG, INFO, WARNING or ERROR."),
) -> None:
    """Run a relay for the pools of this device."""
    home = Home.default()
    setup_logging(home, "relay", log_level)
    limits = RelayLimits(
        max_reservations, max_circuits, max_circuit_bytes, max_circuit_seconds,
        queue_frames, queue_timeout,
    )  # fmt: skip
    if pool_ca:
        pools = load_served_pools(home, "relay", pool_ca, time.time())
        if not pools:
            typer.echo("mesh-relay: no pool to serve (no usable --pool-ca file)", err=True)
            raise typer.Exit(2)
    else:
        try:
            pools = wait_for_pools(home, "relay", None)
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
    asyncio.run(_serve(RelayServer(pools, limits, home), host, port, home))


async def _serve(server: RelayServer, host: str, port: int, home: Home) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    bound = await server.start(host, port)
    port_file = home.root / PORT_FILE  # the local agent keeps a reservation here too
    write_atomic(port_file, f"{bound}\n".encode())
    names = ", ".join(f"{p.name} ({p.anchor.pool_id})" for p in server.pools)
    log.info("relay listening on %s:%d for %s", host, bound, names)
    typer.echo(f"mesh-relay listening on {host}:{bound}")
    try:
        await stop.wait()
    finally:
        log.info("relay stopping")
        port_file.unlink(missing_ok=True)
        await server.close()
