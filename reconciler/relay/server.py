"""The relay server: an asyncio TLS server running RelayCore.

Only clients holding a valid, unrevoked member certificate of a served pool get past
the TLS handshake and the certificate check; anything else is closed before a single
frame is read. Each client has a bounded queue of outgoing frames: a sender whose
peer's queue is full waits (backpressure: the relay stops reading it, so its TCP
window closes); after ``queue_timeout`` the circuit is aborted with QUEUE_FULL.
Connections are capped in total, per address and per member (``RelayLimits``), and the
TLS handshake has a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from reconciler.certs.errors import CertificateError
from reconciler.drivers.gate import HANDSHAKE_TIMEOUT, ConnectionGate, remote_address
from reconciler.drivers.service_tls import (
    ServedPool,
    identify_client,
    load_revocations,
    server_context,
)
from reconciler.home import Home
from reconciler.relay.core import Drop, Output, RelayCore, RelayLimits, Send
from reconciler.relay.messages import ErrorCode

log = logging.getLogger("meshnet.relay")

READ_CHUNK = 2**16
REVOCATION_CHECK_SECONDS = 2.0


@dataclass
class _Conn:
    node_id: str
    writer: asyncio.StreamWriter
    queue: asyncio.Queue[bytes]
    task: asyncio.Task[None] | None = field(default=None)
    pool_id: str = ""
    fingerprints: tuple[str, ...] = ()  # of the key and of the certificate


class RelayServer:
    """A relay for the given pools."""

    def __init__(
        self, pools: list[ServedPool], limits: RelayLimits | None = None, home: Home | None = None
    ) -> None:
        self.pools = pools
        self.home = home
        self.core = RelayCore(limits)
        self.limits = self.core.limits
        self.refused = 0
        self._ctx = server_context(pools)
        self._conns: dict[int, _Conn] = {}
        self._next_client = 0
        self._server: asyncio.Server | None = None
        self._timer: asyncio.Task[None] | None = None
        self._revocation_task: asyncio.Task[None] | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._change = asyncio.Event()  # set, then replaced, on every change of state
        self.gate = ConnectionGate(
            self.limits.max_connections,
            self.limits.max_connections_per_address,
            self.limits.max_connections_per_member,
        )

    async def start(self, host: str, port: int) -> int:
        """Listen on host:port (0: any free port); the port bound."""
        self._server = await asyncio.start_server(
            self._handle, host, port, ssl=self._ctx, ssl_handshake_timeout=HANDSHAKE_TIMEOUT
        )
        loop = asyncio.get_running_loop()
        self._timer = loop.create_task(self._run_timer(), name="relay-timer")
        if self.home is not None:
            self._revocation_task = loop.create_task(self._drop_revoked(), name="relay-revocations")
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self._conns.values()):
            conn.writer.close()
        for task in (self._timer, self._revocation_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self._handlers:  # they end on their own once their connection is closed
            await asyncio.wait(list(self._handlers), timeout=2.0)

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Return once ``predicate()`` holds, checked after each change of the relay's
        state: frames handled, a client refused or gone (for tests and tools)."""
        while not predicate():
            await self._change.wait()

    def _changed(self) -> None:
        self._change.set()
        self._change = asyncio.Event()

    def _refuse(self, writer: asyncio.StreamWriter) -> None:
        self.refused += 1
        writer.close()
        self._changed()

    def _identify(self, writer: asyncio.StreamWriter) -> tuple[str, str, tuple[str, str]]:
        """(node ID, pool ID, fingerprints) of the client's certificate; CertificateError
        if refused."""
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der:
            raise CertificateError("no_certificate", "no client certificate")
        revoked = load_revocations(self.home, self.pools) if self.home is not None else {}
        pool, info = identify_client(der, self.pools, revoked, time.time())
        return info.node_id, pool.anchor.pool_id, (info.fingerprint, info.cert_fingerprint)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)
        address = remote_address(writer)
        if not self.gate.enter(address):
            self._refuse(writer)
            return
        try:
            await self._identified(reader, writer)
        finally:
            self.gate.leave(address)

    async def _identified(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            node_id, pool_id, fingerprints = self._identify(writer)
        except CertificateError as err:
            log.warning("refused %s: %s", writer.get_extra_info("peername"), err)
            self._refuse(writer)
            return
        if not self.gate.claim(f"{pool_id}/{node_id}"):
            log.warning("refused %s of %s: too many connections", node_id, pool_id)
            self._refuse(writer)
            return
        try:
            await self._serve(reader, writer, node_id, pool_id, fingerprints)
        finally:
            self.gate.release(f"{pool_id}/{node_id}")

    async def _serve(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        node_id: str,
        pool_id: str,
        fingerprints: tuple[str, str],
    ) -> None:
        client = self._next_client = self._next_client + 1
        conn = _Conn(
            node_id, writer, asyncio.Queue(self.limits.queue_frames), None, pool_id, fingerprints
        )
        conn.task = asyncio.get_running_loop().create_task(
            self._write(conn), name=f"relay-w{client}"
        )
        self._conns[client] = conn
        self.core.connect(client, node_id, pool_id)
        _nodelay(writer)
        log.info("client %s of %s connected", node_id, pool_id)
        try:
            await self._read(client, reader)
        except (OSError, ssl.SSLError) as err:
            log.debug("client %s: %s", node_id, err)
        finally:
            del self._conns[client]
            self._perform_now(self.core.disconnect(client))
            conn.task.cancel()
            writer.close()
            log.info("client %s disconnected", node_id)
            self._changed()

    async def _drop_revoked(self) -> None:
        while True:
            await asyncio.sleep(REVOCATION_CHECK_SECONDS)
            self.drop_revoked()

    def drop_revoked(self) -> None:
        """Close the connections of members revoked after they connected (the store is
        read again every REVOCATION_CHECK_SECONDS)."""
        assert self.home is not None
        revoked = load_revocations(self.home, self.pools)
        for conn in list(self._conns.values()):
            if any(fp in revoked.get(conn.pool_id, ()) for fp in conn.fingerprints):
                log.warning("dropping %s of %s: revoked", conn.node_id, conn.pool_id)
                conn.writer.close()

    async def _read(self, client: int, reader: asyncio.StreamReader) -> None:
        loop = asyncio.get_running_loop()
        while data := await reader.read(READ_CHUNK):
            for output in self.core.receive(client, data, loop.time()):
                if isinstance(output, Drop):
                    return
                await self._send(output)
            self._changed()

    async def _send(self, output: Send) -> None:
        conn = self._conns.get(output.client)
        if conn is None:
            return
        try:
            await asyncio.wait_for(conn.queue.put(output.data), self.limits.queue_timeout)
        except TimeoutError:
            if output.origin is not None:
                message = (
                    f"the queue of {conn.node_id} stayed full for {self.limits.queue_timeout:g} s"
                )
                self._perform_now(self.core.abort(output.origin, ErrorCode.QUEUE_FULL, message))

    def _perform_now(self, outputs: list[Output]) -> None:
        """Queue without waiting (closing paths); a full queue loses the frame."""
        for output in outputs:
            conn = self._conns.get(output.client)
            if conn is None:
                continue
            if isinstance(output, Drop):
                conn.writer.close()
                continue
            try:
                conn.queue.put_nowait(output.data)
            except asyncio.QueueFull:
                self.core.counters["queue_full_dropped"] += 1

    async def _write(self, conn: _Conn) -> None:
        with contextlib.suppress(OSError, ssl.SSLError, ConnectionError):
            while True:
                conn.writer.write(await conn.queue.get())
                while not conn.queue.empty():
                    conn.writer.write(conn.queue.get_nowait())
                await conn.writer.drain()

    async def _run_timer(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            deadline = self.core.get_timer()
            now = loop.time()
            if deadline is not None and deadline <= now:
                self._perform_now(self.core.handle_timer(now))
                continue
            await asyncio.sleep(0.25 if deadline is None else min(0.25, deadline - now))


def _nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
