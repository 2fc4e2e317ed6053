"""Peer links: TCP + TLS 1.3 with pool certificates on both ends, keyed by node ID.

Each node sends on the connection it dialled and receives on the ones it accepted, so
two nodes never race to agree on one connection. Outbound frames wait in a bounded
queue per peer; a dial that fails is retried with backoff. A peer whose certificate is
refused by `allowed` (unknown or revoked) is disconnected before any frame is read.
Inbound connections are capped (in total, per address and per node: drivers/gate.py)
and their TLS handshake has a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from reconciler.backoff import Backoff, BackoffPolicy
from reconciler.drivers.gate import HANDSHAKE_TIMEOUT, ConnectionGate, remote_address
from reconciler.drivers.tls import PeerIdentity, peer_identity
from reconciler.frames import Channel, FrameDecoder, FrameError, encode_frame

log = logging.getLogger("meshnet.links")

QUEUE_FRAMES = 256
DIRECT_RETRY_SECONDS = 5.0
DIAL_TIMEOUT = 3.0
BACKOFF = BackoffPolicy(0.1, 2.0)

FrameHandler = Callable[[str, Channel, bytes], None]
Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]
RelayDial = Callable[[str], Awaitable[Streams]]


@dataclass
class LinkStats:
    """What a link has done, for `get peers -o wide` and doctor."""

    connected: bool = False
    bytes_sent: int = 0
    bytes_received: int = 0
    frames_dropped: int = 0
    last_error: str = ""
    route: str = "direct"


class _Outbound:
    def __init__(self, node_id: str, host: str, port: int) -> None:
        self.node_id, self.host, self.port = node_id, host, port
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(QUEUE_FRAMES)
        self.task: asyncio.Task[None] | None = None
        self.upgrade: Streams | None = None
        self.writer: asyncio.StreamWriter | None = None  # while connected

    def write_now(self, frame: bytes) -> bool:
        """Write a frame at once when nothing waits before it and the connection takes
        it without buffering (no task switch per frame); False: queue it instead."""
        writer = self.writer
        if writer is None or self.upgrade is not None or not self.queue.empty():
            return False
        if writer.is_closing() or writer.transport.get_write_buffer_size():
            return False  # the writer task finds the error or waits for room
        writer.write(frame)
        return True


class PeerLinks:
    """All of one node's links to its peers."""

    def __init__(
        self,
        self_id: str,
        server_ctx: ssl.SSLContext,
        client_ctx: ssl.SSLContext,
        on_frame: FrameHandler,
        allowed: Callable[[PeerIdentity], bool],
        gate: ConnectionGate | None = None,
    ) -> None:
        self.self_id = self_id
        self.gate = gate or ConnectionGate()
        self.server_ctx, self.client_ctx = server_ctx, client_ctx
        self.on_frame = on_frame
        self.allowed = allowed
        self.stats: dict[str, LinkStats] = {}
        self._out: dict[str, _Outbound] = {}
        self._inbound: dict[asyncio.StreamWriter, str] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None
        self.relay_dial: RelayDial | None = None
        self.on_link_error: Callable[[str, str], None] | None = None  # (node ID, error)
        self._closing = False
        self._accepting: set[asyncio.Task[Any]] = set()

    async def listen(self, host: str, port: int) -> int:
        """Accept links on host:port (0: any free port); the port bound."""
        self._server = await asyncio.start_server(
            self._accept, host, port, ssl=self.server_ctx, ssl_handshake_timeout=HANDSHAKE_TIMEOUT
        )
        return int(self._server.sockets[0].getsockname()[1])

    def set_address(self, node_id: str, host: str, port: int) -> None:
        """Where to dial a peer; a changed address restarts its outbound link."""
        current = self._out.get(node_id)
        if current is not None and (current.host, current.port) == (host, port):
            return
        if current is not None:
            self._stop_outbound(current)
        self._out[node_id] = _Outbound(node_id, host, port)

    def knows(self, node_id: str) -> bool:
        return node_id in self._out

    def send(self, node_id: str, channel: Channel, payload: bytes) -> bool:
        """Queue a frame without waiting; False when the peer is unknown or its queue full."""
        link = self._out.get(node_id)
        if link is None:
            return False
        self._ensure_running(link)
        try:
            frame = encode_frame(channel, payload)
            if link.write_now(frame):
                self._stats(node_id).bytes_sent += len(frame)
            else:
                link.queue.put_nowait(frame)
        except ValueError as err:  # over the channel's frame limit
            log.warning("frame to %s not sent: %s", node_id, err)
            self._stats(node_id).frames_dropped += 1
            return False
        except asyncio.QueueFull:
            self._stats(node_id).frames_dropped += 1
            return False
        return True

    async def send_wait(self, node_id: str, channel: Channel, payload: bytes) -> None:
        """Queue a frame, waiting for room (backpressure for bulk traffic)."""
        link = self._out.get(node_id)
        if link is None:
            raise ConnectionError(f"no address known for {node_id}")
        self._ensure_running(link)
        await link.queue.put(encode_frame(channel, payload))

    def disconnect(self, node_id: str) -> None:
        """Drop every link with a peer (revoked, or gone from the pool)."""
        link = self._out.pop(node_id, None)
        if link is not None:
            self._stop_outbound(link)
        for writer, peer in list(self._inbound.items()):
            if peer == node_id:
                writer.close()
        self._stats(node_id).connected = False

    async def close(self) -> None:
        self._closing = True
        if self._server is not None:
            self._server.close()
        for link in list(self._out.values()):
            self._stop_outbound(link)
        for writer in list(self._inbound):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._accepting:  # closed writers end their readers
            await asyncio.wait(list(self._accepting), timeout=2.0)

    def _stats(self, node_id: str) -> LinkStats:
        return self.stats.setdefault(node_id, LinkStats())

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _ensure_running(self, link: _Outbound) -> None:
        if link.task is None or link.task.done():
            link.task = self._spawn(self._run_outbound(link), f"link-{link.node_id}")

    def _stop_outbound(self, link: _Outbound) -> None:
        if link.task is not None:
            link.task.cancel()
        if link.upgrade is not None:
            link.upgrade[1].close()

    async def _run_outbound(self, link: _Outbound) -> None:
        backoff = Backoff(BACKOFF)
        stats = self._stats(link.node_id)
        while not self._closing:  # Python 3.11's wait_for can swallow a cancellation
            try:
                streams, route = await self._connect(link)
                backoff.succeeded()
                await self._write_loop(link, stats, streams[1], route)
            except (OSError, ssl.SSLError, TimeoutError, ConnectionError, ValueError) as err:
                stats.last_error = f"{type(err).__name__}: {err}"
                log.debug("link to %s failed: %s", link.node_id, stats.last_error)
                if self.on_link_error is not None:
                    self.on_link_error(link.node_id, stats.last_error)
            finally:
                stats.connected = False
            await asyncio.sleep(backoff.failed())

    async def _connect(self, link: _Outbound) -> tuple[Streams, str]:
        """A direct link if one can be made, else a circuit through a relay."""
        try:
            return await self._dial_direct(link), "direct"
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError, ValueError) as err:
            if self.relay_dial is None:
                raise
            log.debug("direct link to %s failed (%s); trying the relay", link.node_id, err)
        return await self.relay_dial(link.node_id), "relay"

    async def _dial_direct(self, link: _Outbound) -> Streams:
        dial = asyncio.open_connection(
            link.host, link.port, ssl=self.client_ctx, server_hostname=link.node_id
        )
        reader, writer = await asyncio.wait_for(dial, DIAL_TIMEOUT)
        try:
            peer = peer_identity(writer.get_extra_info("ssl_object"))
            if peer.node_id != link.node_id or not self.allowed(peer):
                raise ConnectionError(
                    f"{link.host}:{link.port} is {peer.node_id}, not an allowed {link.node_id}"
                )
        except BaseException:
            writer.close()
            raise
        _nodelay(writer)
        return reader, writer

    async def _write_loop(
        self, link: _Outbound, stats: LinkStats, writer: asyncio.StreamWriter, route: str
    ) -> None:
        """Send queued frames; on a relay, keep trying to go back to a direct link."""
        stats.connected, stats.route, stats.last_error = True, route, ""
        loop = asyncio.get_running_loop()
        next_probe = loop.time() + DIRECT_RETRY_SECONDS if route == "relay" else None
        link.upgrade, link.writer = None, writer
        try:
            while True:
                if link.upgrade is not None:
                    writer.close()
                    writer, link.upgrade, next_probe = link.upgrade[1], None, None
                    link.writer, stats.route = writer, "direct"
                    log.info("link to %s is direct again", link.node_id)
                elif next_probe is not None and loop.time() >= next_probe:
                    next_probe = loop.time() + DIRECT_RETRY_SECONDS
                    self._spawn(self._probe_direct(link), f"probe-{link.node_id}")
                frame = await self._next_frame(link, next_probe)
                if frame is None:
                    continue
                writer.write(frame)
                await writer.drain()
                stats.bytes_sent += len(frame)
        finally:
            link.writer = None
            writer.close()

    @staticmethod
    async def _next_frame(link: _Outbound, next_probe: float | None) -> bytes | None:
        if next_probe is None:
            return await link.queue.get()
        timeout = max(0.0, next_probe - asyncio.get_running_loop().time())
        try:
            return await asyncio.wait_for(link.queue.get(), timeout)
        except TimeoutError:
            return None

    async def _probe_direct(self, link: _Outbound) -> None:
        try:
            link.upgrade = await self._dial_direct(link)
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError, ValueError):
            return

    async def accept_relayed(
        self, node_id: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Read frames from a peer that reached us through a relay (already authenticated
        end to end by the circuit's inner TLS)."""
        self._inbound[writer] = node_id
        try:
            await self._read_frames(node_id, reader)
        except (OSError, ssl.SSLError, FrameError, asyncio.IncompleteReadError) as err:
            log.debug("relayed link from %s closed: %s", node_id, err)
        finally:
            self._inbound.pop(writer, None)
            writer.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:  # never cancelled (asyncio's stream protocol reads its result)
            self._accepting.add(task)
            task.add_done_callback(self._accepting.discard)
        address = remote_address(writer)
        if self._closing or not self.gate.enter(address):
            writer.close()
            return
        try:
            await self._serve_inbound(reader, writer)
        finally:
            self.gate.leave(address)

    async def _serve_inbound(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            peer = peer_identity(writer.get_extra_info("ssl_object"))
        except ValueError:
            writer.close()
            return
        if not self.allowed(peer):
            log.warning("refused link from %s (%s)", peer.node_id, peer.fingerprint)
            writer.close()
            return
        if not self.gate.claim(peer.node_id):
            log.warning(
                "refused link from %s: it has %d open", peer.node_id, self.gate.per_identity
            )
            writer.close()
            return
        _nodelay(writer)
        self._inbound[writer] = peer.node_id
        try:
            await self._read_frames(peer.node_id, reader)
        except (OSError, ssl.SSLError, FrameError, asyncio.IncompleteReadError) as err:
            log.debug("link from %s closed: %s", peer.node_id, err)
        finally:
            self.gate.release(peer.node_id)
            self._inbound.pop(writer, None)
            writer.close()

    async def _read_frames(self, node_id: str, reader: asyncio.StreamReader) -> None:
        decoder = FrameDecoder()
        stats = self._stats(node_id)
        while chunk := await reader.read(2**16):
            stats.bytes_received += len(chunk)
            for channel, payload in decoder.feed(chunk):
                try:
                    self.on_frame(node_id, channel, payload)
                except Exception:
                    log.exception("handling a frame from %s failed", node_id)


def _nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
