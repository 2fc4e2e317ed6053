"""Running the control plane: a free port in a range, TLS, uvicorn.

The port: the first of ``port .. port_range_end`` that can be bound (8080-8179 by
default); the socket is bound here and handed to uvicorn, so no other process can take
it in between. The chosen port is written to ``$MESHNET_HOME/control-plane.port``
(one line, the port number) for device1.sh and the agent (``read_port``).

TLS: the pools' server contexts of service_tls.py with CERT_OPTIONAL, so anonymous
clients can reach ``/healthz`` and the join endpoints while member endpoints check the
certificate (auth.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import socket
import ssl
import time

import uvicorn

from reconciler.controlplane.app import create_app
from reconciler.controlplane.auth import PeerCertH11Protocol
from reconciler.controlplane.limits import KEEP_ALIVE_SECONDS, LIMIT_CONCURRENCY
from reconciler.drivers.gate import HANDSHAKE_TIMEOUT
from reconciler.drivers.service_tls import (
    ServedPool,
    default_ca_files,
    load_served_pools,
    server_context,
)
from reconciler.home import Home, write_atomic

PORT_FILE = "control-plane.port"
DEFAULT_PORT = 8080
DEFAULT_RANGE_END = 8179


class NoFreePort(OSError):
    """Every port of the range is taken."""


def bind_first_free(host: str, start: int, end: int) -> socket.socket:
    """A listening-ready socket on the first port of start..end that binds."""
    for port in range(start, max(start, end) + 1):
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as err:
            sock.close()
            if err.errno in (errno.EADDRINUSE, errno.EACCES):
                continue
            raise
        return sock
    raise NoFreePort(f"no free port in {start}-{end} on {host}")


def port_file(home: Home) -> str:
    return str(home.root / PORT_FILE)


def read_port(home: Home) -> int | None:
    """The port the control plane of this home chose, if it recorded one."""
    try:
        return int((home.root / PORT_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


class _Config(uvicorn.Config):
    """uvicorn's config with a prebuilt SSL context (one per pool, chosen by SNI)."""

    def __init__(self, *args: object, ssl_context: ssl.SSLContext, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._ssl_context = ssl_context

    def load(self) -> None:
        super().load()
        self.ssl = self._ssl_context


class _Server(uvicorn.Server):
    """uvicorn's server without its own signal handling (the caller owns signals)."""

    def capture_signals(self) -> contextlib.AbstractContextManager[None]:  # type: ignore[override]
        return contextlib.nullcontext()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's startup, its TLS handshakes bounded by HANDSHAKE_TIMEOUT (uvicorn has
        no setting for it: the loop's create_server gets it for this call)."""
        loop = asyncio.get_running_loop()
        create_server = loop.create_server
        bounded = functools.partial(create_server, ssl_handshake_timeout=HANDSHAKE_TIMEOUT)
        loop.create_server = bounded  # type: ignore[method-assign]
        try:
            await super().startup(sockets)
        finally:
            del loop.create_server


class ControlPlane:
    """One control plane server, started and stopped from a running event loop."""

    def __init__(
        self,
        home: Home,
        host: str = "0.0.0.0",
        port: int = DEFAULT_PORT,
        port_range_end: int = DEFAULT_RANGE_END,
        pools: list[ServedPool] | None = None,
        api_lan: bool = False,
    ) -> None:
        self.home, self.host, self.api_lan = home, host, api_lan
        self.port_range = (port, port_range_end)
        if pools is None:
            pools = load_served_pools(home, "controlplane", default_ca_files(home), time.time())
        self.pools = pools
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> int:
        """Bind, record the port, serve in the background; the port."""
        sock = bind_first_free(self.host, *self.port_range)
        self.port = int(sock.getsockname()[1])
        config = _Config(
            create_app(self.home, self.pools, self.api_lan),
            ssl_context=server_context(self.pools, ssl.CERT_OPTIONAL),
            http=PeerCertH11Protocol,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
            limit_concurrency=LIMIT_CONCURRENCY,
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
        )
        self._server = _Server(config)
        self._task = asyncio.get_running_loop().create_task(
            self._server.serve(sockets=[sock]), name="control-plane"
        )
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("control plane stopped while starting")
            await asyncio.sleep(0.01)
        write_atomic(self.home.root / PORT_FILE, f"{self.port}\n".encode())
        return self.port

    def request_stop(self) -> None:
        """Ask the server to finish (safe from a signal handler)."""
        if self._server is not None:
            self._server.should_exit = True

    async def stop(self) -> None:
        self.request_stop()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task

    async def wait(self) -> None:
        if self._task is not None:
            await self._task
