"""A member's side of a relay: a kept reservation, outgoing and incoming circuits.

``RelayClient`` holds one TLS connection to a relay (its member certificate as the
client certificate, the pool ID as SNI), keeps a reservation on it and reconnects
with backoff when it drops. ``open_circuit(node_id)`` returns asyncio streams that
already run an inner mutual TLS 1.3 session with the peer (``client_ctx``: the same
context as direct peer links); incoming circuits are handed to ``on_circuit`` after
the inner server-side handshake (``server_ctx``). The peer's certificate must name
the node the circuit was opened to (or, incoming, the node the relay says opened it).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, cast

from reconciler.backoff import Backoff, BackoffPolicy
from reconciler.drivers.tls import PeerIdentity, peer_identity
from reconciler.relay.circuit import CircuitClosed, CircuitTls
from reconciler.relay.framing import BadFrame, FrameParser, StreamBroken, encode
from reconciler.relay.messages import (
    NO_CIRCUIT,
    RELAY_CIRCUIT_BIT,
    Close,
    Connect,
    Connected,
    Data,
    Error,
    ErrorCode,
    Incoming,
    Message,
    PeerEntry,
    Peers,
    Register,
    Reserve,
    Reserved,
)

log = logging.getLogger("meshnet.relay.client")

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]
CircuitHandler = Callable[[str, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None] | None]
BACKOFF = BackoffPolicy(0.1, 5.0)
REGISTER_SECONDS = 5.0


class RelayError(ConnectionError):
    """The relay refused something; ``code`` is an ErrorCode (None: connection trouble)."""

    def __init__(self, code: ErrorCode | None, message: str) -> None:
        super().__init__(f"{code.name}: {message}" if code is not None else message)
        self.code = code


class _Link(asyncio.Protocol):
    """The TLS connection to the relay (one per connect attempt)."""

    def __init__(self, client: RelayClient) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.parser = FrameParser()
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.circuits: dict[int, CircuitTls] = {}
        self.paused: set[int] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop: not a subclass

    def data_received(self, data: bytes) -> None:
        for event in self.parser.feed(data):
            if isinstance(event, StreamBroken | BadFrame):
                log.warning("bad frame from relay: %s", event.reason)
                if isinstance(event, StreamBroken) and self.transport is not None:
                    self.transport.close()
            else:
                self.client._on_message(self, event)

    def connection_lost(self, exc: Exception | None) -> None:
        for circuit in list(self.circuits.values()):
            circuit.remote_closed(RelayError(None, "relay connection lost"))
        if not self.lost.done():
            self.lost.set_result(None)

    def pause_writing(self) -> None:
        for circuit in self.circuits.values():
            circuit.protocol.pause_writing()

    def resume_writing(self) -> None:
        for circuit in self.circuits.values():
            circuit.protocol.resume_writing()

    # -- CircuitLink -------------------------------------------------------------

    def send(self, message: Message) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(encode(message))

    def forget(self, circuit_id: int) -> None:
        self.circuits.pop(circuit_id, None)
        self.set_circuit_paused(circuit_id, False)

    def set_circuit_paused(self, circuit_id: int, paused: bool) -> None:
        before = bool(self.paused)
        if paused:
            self.paused.add(circuit_id)
        else:
            self.paused.discard(circuit_id)
        if self.transport is not None and before != bool(self.paused):
            if self.paused:
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()

    def write_buffer_size(self) -> int:
        return 0 if self.transport is None else self.transport.get_write_buffer_size()


class RelayClient:
    """A reservation on one relay, and circuits through it."""

    def __init__(
        self,
        host: str,
        port: int,
        node_id: str,
        pool_id: str,
        client_ctx: ssl.SSLContext,
        server_ctx: ssl.SSLContext,
        on_circuit: CircuitHandler | None = None,
        allowed: Callable[[PeerIdentity], bool] = lambda _peer: True,
        handshake_timeout: float = 10.0,
    ) -> None:
        self.host, self.port = host, port
        self.node_id, self.pool_id = node_id, pool_id
        self.client_ctx, self.server_ctx = client_ctx, server_ctx
        self.on_circuit = on_circuit
        self.allowed = allowed
        self.handshake_timeout = handshake_timeout
        self.last_error = ""
        self._link: _Link | None = None
        self._reserved = asyncio.Event()
        self._connected = asyncio.Event()
        self._opening: dict[int, asyncio.Future[None]] = {}
        self._next_cid = 0
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self.registration: Register | None = None
        self.on_peers: Callable[[tuple[PeerEntry, ...]], None] | None = None
        self.on_error: Callable[[RelayError], None] | None = None  # the relay refused us
        self.peers_heard = 0

    @property
    def reserved(self) -> bool:
        return self._reserved.is_set()

    def start(self) -> None:
        """Connect and keep the reservation (reconnecting with backoff) until close()."""
        if self._task is None:
            self._task = self._spawn(self._run(), f"relay-{self.host}:{self.port}")

    async def wait_reserved(self, timeout: float) -> None:
        await asyncio.wait_for(self._reserved.wait(), timeout)

    async def close(self) -> None:
        self._closing = True
        tasks = [t for t in (self._task, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        if self._link is not None and self._link.transport is not None:
            self._link.transport.close()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _run(self) -> None:
        backoff = Backoff(BACKOFF)
        while not self._closing:  # Python 3.11's wait_for can swallow a cancellation
            try:
                await self._connect_once()
                backoff.succeeded()
            except (OSError, ssl.SSLError, TimeoutError) as err:
                self.last_error = f"{type(err).__name__}: {err}"
                log.debug("relay %s:%s: %s", self.host, self.port, self.last_error)
            await asyncio.sleep(backoff.failed())

    async def _connect_once(self) -> None:
        loop = asyncio.get_running_loop()
        connecting = loop.create_connection(
            lambda: _Link(self), self.host, self.port, ssl=self.client_ctx,
            server_hostname=self.pool_id,
        )  # fmt: skip
        transport, link = await asyncio.wait_for(connecting, self.handshake_timeout)
        if self._closing:  # closed while connecting
            transport.close()
            return
        self._link = link
        self._connected.set()
        link.send(Reserve(self.node_id))
        try:
            while not link.lost.done():  # the rendezvous: register again now and then
                if self.registration is not None:
                    link.send(self.registration)
                await asyncio.wait([link.lost], timeout=REGISTER_SECONDS)
        finally:
            self._link = None
            self._connected.clear()
            self._reserved.clear()
            for future in self._opening.values():
                if not future.done():
                    future.set_exception(RelayError(None, "relay connection lost"))
            self.last_error = self.last_error or "relay connection lost"

    # -- circuits ------------------------------------------------------------------

    async def open_circuit(self, node_id: str, timeout: float = 10.0) -> Streams:
        """Streams to ``node_id`` through the relay, end-to-end TLS already established.

        Raises RelayError (refused: unknown target, limits; or no relay connection),
        ssl.SSLError or CircuitClosed (the inner handshake failed) or TimeoutError.
        """
        async with asyncio.timeout(timeout):
            await self._connected.wait()
            link = self._link
            if link is None:
                raise RelayError(None, "not connected to the relay")
            cid = self._next_cid
            self._next_cid = (self._next_cid + 1) % RELAY_CIRCUIT_BIT
            circuit = CircuitTls(link, cid, self.client_ctx, server_side=False, peer=node_id)
            link.circuits[cid] = circuit
            opened = self._opening[cid] = asyncio.get_running_loop().create_future()
            link.send(Connect(cid, node_id))
            try:
                await opened
            except BaseException:
                link.forget(cid)
                raise
            finally:
                self._opening.pop(cid, None)
            await self._authenticate(circuit, node_id)
        return circuit.reader, circuit.writer

    async def _authenticate(self, circuit: CircuitTls, expected: str) -> None:
        try:
            await circuit.handshake()
            peer = peer_identity(circuit.ssl)
        except BaseException:
            circuit.close_circuit("handshake failed")
            raise
        if peer.node_id != expected or not self.allowed(peer):
            circuit.close_circuit("wrong peer")
            raise CircuitClosed(f"circuit peer is {peer.node_id}, not an allowed {expected}")

    async def _accept(self, link: _Link, msg: Incoming) -> None:
        circuit = CircuitTls(
            link, msg.circuit_id, self.server_ctx, server_side=True, peer=msg.source
        )
        link.circuits[msg.circuit_id] = circuit
        try:
            async with asyncio.timeout(self.handshake_timeout):
                await self._authenticate(circuit, msg.source)
        except (OSError, ssl.SSLError, ValueError, TimeoutError) as err:
            log.warning("incoming circuit from %s refused: %s", msg.source, err)
            return
        assert self.on_circuit is not None
        result = self.on_circuit(msg.source, circuit.reader, circuit.writer)
        if inspect.isawaitable(result):
            await result

    def register(self, registration: Register) -> None:
        """Take part in the relay's rendezvous with these addresses (sent at once when
        connected, then every REGISTER_SECONDS; PEERS answers go to ``on_peers``)."""
        self.registration = registration
        if self._link is not None:
            self._link.send(registration)

    def _on_message(self, link: _Link, msg: Message) -> None:
        if isinstance(msg, Peers):
            self.peers_heard = len(msg.entries)
            if self.on_peers is not None:
                self.on_peers(msg.entries)
        elif isinstance(msg, Data):
            circuit = link.circuits.get(msg.circuit_id)
            if circuit is not None:
                circuit.feed(msg.payload)
        elif isinstance(msg, Reserved):
            self._reserved.set()
        elif isinstance(msg, Connected):
            self._settle(msg.circuit_id, None)
        elif isinstance(msg, Incoming):
            self._incoming(link, msg)
        elif isinstance(msg, Close | Error):
            self._closed(link, msg)

    def _incoming(self, link: _Link, msg: Incoming) -> None:
        if self.on_circuit is None or msg.circuit_id in link.circuits:
            link.send(Close(msg.circuit_id, "not accepting circuits"))
            return
        self._spawn(self._accept(link, msg), f"relay-in-{msg.source}")

    def _closed(self, link: _Link, msg: Close | Error) -> None:
        error = RelayError(msg.code, msg.message) if isinstance(msg, Error) else None
        if isinstance(msg, Error) and msg.circuit_id == NO_CIRCUIT:
            self.last_error = str(error)
            log.warning("relay %s:%s: %s", self.host, self.port, error)
            if self.on_error is not None and error is not None:
                self.on_error(error)
            return
        cid = msg.circuit_id
        if self._settle(cid, error or RelayError(None, f"circuit refused: {msg}")):
            return
        circuit = link.circuits.get(cid)
        if circuit is not None:
            circuit.remote_closed(error)

    def _settle(self, cid: int, error: BaseException | None) -> bool:
        future = self._opening.get(cid)
        if future is None or future.done():
            return False
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
        return True
