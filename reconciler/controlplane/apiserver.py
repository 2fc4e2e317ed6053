"""The agent's OpenAI-compatible API server (``meshctl agent --api-port PORT``).

Plain HTTP with uvicorn, on ``127.0.0.1`` unless ``--api-host`` says otherwise: API keys
travel in the clear, so binding it to the LAN is an explicit choice (the README weighs
it; the control plane serves the same routes over TLS).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

import uvicorn

from reconciler.controlplane.app import create_api_app
from reconciler.home import Home

DEFAULT_API_HOST = "127.0.0.1"


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling (the agent owns signals)."""

    def capture_signals(self) -> contextlib.AbstractContextManager[None]:  # type: ignore[override]
        return contextlib.nullcontext()


class ApiServer:
    """One API server, run as a task of the agent."""

    def __init__(self, home: Home, host: str = DEFAULT_API_HOST, port: int = 0) -> None:
        self.home, self.host, self.port = home, host, port
        self._server: _Server | None = None

    def bind(self) -> socket.socket:
        """The listening socket (bound now, so a taken port fails at start)."""
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = int(sock.getsockname()[1])
        return sock

    async def serve(self, sock: socket.socket, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set."""
        config = uvicorn.Config(
            create_api_app(self.home), log_config=None, access_log=False, lifespan="off",
            timeout_graceful_shutdown=1,
        )  # fmt: skip
        self._server = _Server(config)
        task = asyncio.get_running_loop().create_task(
            self._server.serve(sockets=[sock]), name="api-server"
        )
        try:
            await stop.wait()
        finally:
            self._server.should_exit = True
            with contextlib.suppress(Exception):
                await task
