"""One end of a relay circuit: an inner, end-to-end TLS 1.3 session over DATA frames,
exposed as a real ``asyncio.StreamReader`` / ``asyncio.StreamWriter`` pair.

The TLS session runs in an ``ssl.SSLObject`` over memory BIOs (this works on any event
loop, uvloop included, unlike ``loop.start_tls`` over a custom transport). Ciphertext
leaves as DATA frames through the relay connection (``CircuitLink``) and arrives via
``feed``; the relay only ever sees TLS records. Flow control: the writer's ``drain``
waits while the relay connection's write buffer is full; a reader whose buffer fills
pauses reading of the whole relay connection until it drains.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Any, Protocol

from reconciler.relay.framing import MAX_PAYLOAD
from reconciler.relay.messages import Close, Data, Message

READ_SIZE = 2**16


class CircuitLink(Protocol):
    """What a circuit needs of the relay connection that carries it."""

    def send(self, message: Message) -> None: ...
    def forget(self, circuit_id: int) -> None: ...
    def set_circuit_paused(self, circuit_id: int, paused: bool) -> None: ...
    def write_buffer_size(self) -> int: ...


class CircuitClosed(ConnectionError):
    """The circuit was closed by the peer or the relay."""


class CircuitTls:
    """TLS over one circuit; ``reader``/``writer`` carry the plaintext."""

    def __init__(
        self,
        link: CircuitLink,
        circuit_id: int,
        ctx: ssl.SSLContext,
        server_side: bool,
        peer: str,
    ) -> None:
        self.link, self.circuit_id, self.peer = link, circuit_id, peer
        self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.ssl = ctx.wrap_bio(self._in, self._out, server_side=server_side)
        self.reader = asyncio.StreamReader()
        self.protocol = asyncio.StreamReaderProtocol(self.reader)
        self.transport = _CircuitTransport(self)
        self.protocol.connection_made(self.transport)
        self.writer = asyncio.StreamWriter(
            self.transport, self.protocol, self.reader, asyncio.get_running_loop()
        )
        self.closed = False
        self.handshake_done = False
        self._input = asyncio.Event()
        self._error: Exception | None = None

    async def handshake(self) -> None:
        """Run the TLS handshake over the circuit (raise ssl.SSLError / CircuitClosed)."""
        while True:
            if self._error is not None:
                raise self._error
            try:
                self.ssl.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                self._input.clear()
                await self._input.wait()
        self.handshake_done = True
        self._flush()
        self._pump()

    # -- from the relay connection -------------------------------------------------

    def feed(self, ciphertext: bytes) -> None:
        if self.closed:
            return
        self._in.write(ciphertext)
        if self.handshake_done:
            self._pump()
        else:
            self._input.set()

    def remote_closed(self, error: Exception | None) -> None:
        """The peer or the relay closed the circuit."""
        if self.closed:
            return
        self._error = error or CircuitClosed(f"circuit to {self.peer} closed")
        self._input.set()
        self._finish(error)

    # -- internals -----------------------------------------------------------------

    def _pump(self) -> None:
        while not self.closed:
            try:
                data = self.ssl.read(READ_SIZE)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                self.reader.feed_eof()
                break
            except ssl.SSLError as err:
                self.close_circuit(f"TLS error: {err}")
                self._finish(err)
                break
            if not data:
                self.reader.feed_eof()
                break
            self.reader.feed_data(data)
        self._flush()

    def _flush(self) -> None:
        while self._out.pending and not self.closed:
            chunk = self._out.read(MAX_PAYLOAD)
            self.link.send(Data(self.circuit_id, chunk))

    def write_plain(self, data: bytes) -> None:
        if self.closed:
            raise CircuitClosed(f"circuit to {self.peer} is closed")
        view = memoryview(data)
        while view:
            written = self.ssl.write(view)
            view = view[written:]
        self._flush()

    def close_circuit(self, reason: str = "") -> None:
        """Close our end: TLS close_notify, then a CLOSE frame."""
        if self.closed:
            return
        if self.handshake_done:
            with contextlib.suppress(ssl.SSLError):
                self.ssl.unwrap()  # queues close_notify; the peer's never comes back here
            self._flush()
        self.link.send(Close(self.circuit_id, reason))
        self._finish(None)

    def _finish(self, error: Exception | None) -> None:
        self.closed = True
        self.link.forget(self.circuit_id)
        if error is not None and not self.reader.at_eof():
            self.reader.set_exception(error)
        else:
            self.reader.feed_eof()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # garbage-collected after the loop ended: nobody to tell
            return
        loop.call_soon(self.protocol.connection_lost, error)


class _CircuitTransport(asyncio.Transport):
    """The plaintext side of a circuit, for asyncio.StreamWriter."""

    def __init__(self, circuit: CircuitTls) -> None:
        super().__init__({"peername": ("relay", circuit.peer)})
        self._circuit = circuit
        self._protocol: asyncio.BaseProtocol = circuit.protocol

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "ssl_object":
            return self._circuit.ssl
        if name == "sslcontext":
            return self._circuit.ssl.context
        if name == "peercert":
            return self._circuit.ssl.getpeercert()
        return super().get_extra_info(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._circuit.write_plain(bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def can_write_eof(self) -> bool:
        return False

    def is_closing(self) -> bool:
        return self._circuit.closed

    def close(self) -> None:
        self._circuit.close_circuit("closed")

    def abort(self) -> None:
        self._circuit.close_circuit("aborted")

    def get_write_buffer_size(self) -> int:
        return self._circuit.link.write_buffer_size()

    def pause_reading(self) -> None:
        self._circuit.link.set_circuit_paused(self._circuit.circuit_id, True)

    def resume_reading(self) -> None:
        self._circuit.link.set_circuit_paused(self._circuit.circuit_id, False)

    def is_reading(self) -> bool:
        return True

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol
