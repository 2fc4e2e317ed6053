"""The relay on loopback with real sockets: circuits with end-to-end TLS, refusals,
limits and backpressure."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import pytest

from reconciler.drivers.service_tls import load_served_pools
from reconciler.drivers.tls import client_context, server_context
from reconciler.relay.client import RelayClient, RelayError
from reconciler.relay.core import RelayLimits, Send
from reconciler.relay.framing import FrameParser, encode
from reconciler.relay.messages import Connect, Error, ErrorCode, Reserve
from reconciler.relay.server import RelayServer

if TYPE_CHECKING:
    from tests.unit.relay.conftest import Member, PoolKit

Echo = Callable[[str, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _echo(peer: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


@asynccontextmanager
async def _relay(
    kit: PoolKit, limits: RelayLimits | None = None
) -> AsyncIterator[tuple[RelayServer, int]]:
    pools = load_served_pools(kit.home, "relay", [kit.ca_file], time.time())
    server = RelayServer(pools, limits, kit.home)
    port = await server.start("127.0.0.1", 0)
    try:
        yield server, port
    finally:
        await server.close()


def _client(kit: PoolKit, member: Member, port: int, on_circuit: Echo | None = None) -> RelayClient:
    return RelayClient(
        "127.0.0.1", port, member.node_id, kit.root.pool_id,
        client_context(member.files), server_context(member.files), on_circuit,
    )  # fmt: skip


def test_two_members_talk_through_a_circuit_with_end_to_end_tls(pool: PoolKit) -> None:
    a, b = pool.member("a"), pool.member("b")

    async def scenario() -> None:
        async with _relay(pool) as (server, port):
            ca, cb = _client(pool, a, port), _client(pool, b, port, _echo)
            ca.start()
            cb.start()
            try:
                await cb.wait_reserved(5)
                reader, writer = await ca.open_circuit(b.node_id, timeout=5)
                ssl_object = writer.get_extra_info("ssl_object")
                assert ssl_object.version() == "TLSv1.3"
                assert b.node_id in str(ssl_object.getpeercert())
                payload = bytes(range(256)) * 1000  # several DATA frames
                writer.write(payload)
                await writer.drain()
                echoed = await asyncio.wait_for(reader.readexactly(len(payload)), 5)
                assert echoed == payload
                assert server.core.circuit_count() == 1
                writer.close()  # the circuit's CLOSE reaches the relay
                no_circuit = server.wait_until(lambda: server.core.circuit_count() == 0)
                await asyncio.wait_for(no_circuit, 5)
            finally:
                await ca.close()
                await cb.close()

    asyncio.run(scenario())


class _Spy(RelayServer):
    """A relay that records every DATA payload it forwards (what it could read)."""

    seen = bytearray()

    async def _send(self, output: Send) -> None:
        _Spy.seen += output.data
        await super()._send(output)


def test_the_relay_sees_only_ciphertext(pool: PoolKit) -> None:
    a, b = pool.member("a"), pool.member("b")
    secret = b"the-secret-plaintext-" * 50

    async def scenario() -> None:
        pools = load_served_pools(pool.home, "relay", [pool.ca_file], time.time())
        server = _Spy(pools, None, pool.home)
        port = await server.start("127.0.0.1", 0)
        ca, cb = _client(pool, a, port), _client(pool, b, port, _echo)
        ca.start()
        cb.start()
        try:
            await cb.wait_reserved(5)
            reader, writer = await ca.open_circuit(b.node_id, timeout=5)
            writer.write(secret)
            assert await asyncio.wait_for(reader.readexactly(len(secret)), 5) == secret
        finally:
            await ca.close()
            await cb.close()
            await server.close()
        assert len(_Spy.seen) > 2 * len(secret)
        assert b"the-secret-plaintext" not in _Spy.seen

    asyncio.run(scenario())


async def _raw(
    port: int, ctx: ssl.SSLContext, pool_id: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=pool_id)


def _anonymous_context(ca: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(cafile=ca)
    return ctx


def test_clients_without_a_pool_certificate_are_refused(
    pool: PoolKit, pool_factory: Callable[[str], PoolKit]
) -> None:
    b = pool.member("b")
    stranger = pool_factory("elsewhere").member("s")

    async def scenario() -> None:
        # the relay serves only "lab" (explicit CA list), so "elsewhere" is a stranger
        async with _relay(pool) as (server, port):
            cb = _client(pool, b, port, _echo)
            cb.start()
            await cb.wait_reserved(5)
            attempts = [
                _anonymous_context(str(pool.ca_file)),
                _stranger_context(stranger, pool),
            ]
            for ctx in attempts:
                try:
                    reader, writer = await _raw(port, ctx, pool.root.pool_id)
                    writer.write(encode(Reserve("x")) + encode(Connect(1, b.node_id)))
                    data = await asyncio.wait_for(reader.read(), 5)
                except (ssl.SSLError, ConnectionError):
                    data = b""
                assert data == b""  # closed: not one frame answered or forwarded
            assert server.core.counters["circuits"] == 0
            await cb.close()

    asyncio.run(scenario())


def _stranger_context(stranger: Member, pool: PoolKit) -> ssl.SSLContext:
    ctx = client_context(stranger.files)
    ctx.load_verify_locations(cafile=str(pool.ca_file))  # trusts the relay, but is not of its pool
    return ctx


def test_limits_are_enforced_with_error_frames(pool: PoolKit) -> None:
    a, b, c = pool.member("a"), pool.member("b"), pool.member("c")
    limits = RelayLimits(max_reservations=2, max_circuits_per_member=1)

    async def scenario() -> None:
        async with _relay(pool, limits) as (_server, port):
            ca, cb = _client(pool, a, port, _echo), _client(pool, b, port, _echo)
            ca.start()
            cb.start()
            await ca.wait_reserved(5)
            await cb.wait_reserved(5)
            cc = _client(pool, c, port)
            refusals: asyncio.Queue[RelayError] = asyncio.Queue()
            cc.on_error = refusals.put_nowait
            cc.start()
            try:
                refused = await asyncio.wait_for(refusals.get(), 5)
                assert refused.code is ErrorCode.TOO_MANY_RESERVATIONS and not cc.reserved
                assert "TOO_MANY_RESERVATIONS" in cc.last_error
                with pytest.raises(RelayError) as unknown:
                    await ca.open_circuit("node-0000000000000000", timeout=5)
                assert unknown.value.code is ErrorCode.UNKNOWN_TARGET
                await ca.open_circuit(b.node_id, timeout=5)
                with pytest.raises(RelayError) as many:
                    await ca.open_circuit(b.node_id, timeout=5)
                assert many.value.code is ErrorCode.TOO_MANY_CIRCUITS
            finally:
                await ca.close()
                await cb.close()
                await cc.close()

    asyncio.run(scenario())


def test_circuit_bytes_and_duration_limits_close_the_circuit(pool: PoolKit) -> None:
    a, b = pool.member("a"), pool.member("b")
    limits = RelayLimits(max_circuit_bytes=200_000, max_circuit_seconds=0.5)

    async def scenario() -> None:
        async with _relay(pool, limits) as (_server, port):
            ca, cb = _client(pool, a, port), _client(pool, b, port, _echo)
            ca.start()
            cb.start()
            try:
                await cb.wait_reserved(5)
                reader, writer = await ca.open_circuit(b.node_id, timeout=5)
                writer.write(b"x" * 300_000)
                with pytest.raises(RelayError) as exceeded:
                    await asyncio.wait_for(reader.readexactly(300_000), 5)
                assert exceeded.value.code is ErrorCode.CIRCUIT_BYTES_EXCEEDED
                reader, writer = await ca.open_circuit(b.node_id, timeout=5)
                with pytest.raises(RelayError) as expired:
                    await asyncio.wait_for(reader.read(), 5)
                assert expired.value.code is ErrorCode.CIRCUIT_DURATION_EXCEEDED
            finally:
                await ca.close()
                await cb.close()

    asyncio.run(scenario())


def test_a_slow_reader_gets_backpressure_then_queue_full(pool: PoolKit) -> None:
    a, b = pool.member("a"), pool.member("b")
    limits = RelayLimits(queue_frames=4, queue_timeout=0.3)

    async def scenario() -> None:
        async with _relay(pool, limits) as (_server, port):
            ca = _client(pool, a, port)
            ca.start()
            # b is a raw client that reserves and then never reads
            rb, wb = await _raw(port, client_context(b.files), pool.root.pool_id)
            wb.write(encode(Reserve(b.node_id)))
            parser = FrameParser()
            assert parser.feed(await rb.read(4096))  # RESERVED
            try:
                await ca.wait_reserved(5)
                raw_a, wa = await _raw(port, client_context(a.files), pool.root.pool_id)
                wa.write(encode(Connect(7, b.node_id)))
                from reconciler.relay.messages import Data

                chunk = encode(Data(7, b"z" * 60_000))
                errors: list[Error] = []
                refused = asyncio.Event()
                reading = parser_a = FrameParser()

                async def collect() -> None:
                    while data := await raw_a.read(65536):
                        errors.extend(e for e in reading.feed(data) if isinstance(e, Error))
                        if errors:
                            refused.set()

                async def flood() -> None:  # ~12 MB: far more than b's buffers and queue
                    for _ in range(200):
                        wa.write(chunk)
                        await wa.drain()  # blocks while the relay holds a back

                collector = asyncio.create_task(collect())
                flooding = asyncio.create_task(flood())
                await asyncio.wait_for(refused.wait(), 10)
                assert [e.code for e in errors] == [ErrorCode.QUEUE_FULL]
                assert parser_a is reading
                for task in (collector, flooding):
                    task.cancel()
                await asyncio.gather(collector, flooding, return_exceptions=True)
                wa.close()
            finally:
                wb.close()
                await ca.close()

    asyncio.run(scenario())


def test_a_revoked_member_is_refused_after_the_handshake(
    pool: PoolKit, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = pool.member("a"), pool.member("b")
    from reconciler.store import Store
    from reconciler.store_admin import record_revocation

    with Store.open(pool.home.root) as store:
        record_revocation(store, pool.root, a.identity.fingerprint, time.time())

    async def scenario() -> None:
        async with _relay(pool) as (server, port):
            cb = _client(pool, b, port, _echo)
            ca = _client(pool, a, port)
            ca.start()
            cb.start()
            try:
                await cb.wait_reserved(5)
                await asyncio.wait_for(server.wait_until(lambda: server.refused >= 1), 5)
                assert not ca.reserved and "revoked" in caplog.text
                assert server.core.reservation_count() == 1
            finally:
                await ca.close()
                await cb.close()

    asyncio.run(scenario())


def test_a_member_revoked_while_connected_is_dropped(pool: PoolKit) -> None:
    """The relay's revocation check (run every REVOCATION_CHECK_SECONDS) closes the
    member's connection; its reconnection is refused."""
    from reconciler.store import Store
    from reconciler.store_admin import record_revocation

    a, b = pool.member("a"), pool.member("b")

    async def scenario() -> None:
        async with _relay(pool) as (server, port):
            ca, cb = _client(pool, a, port), _client(pool, b, port, _echo)
            ca.start()
            cb.start()
            try:
                await ca.wait_reserved(5)
                await cb.wait_reserved(5)
                with Store.open(pool.home.root) as store:
                    record_revocation(store, pool.root, a.identity.fingerprint, time.time())
                assert server.core.reservation_count() == 2 and server.refused == 0
                server.drop_revoked()

                def dropped_and_refused() -> bool:
                    return server.core.reservation_count() == 1 and server.refused >= 1

                await asyncio.wait_for(server.wait_until(dropped_and_refused), 10)
                assert not ca.reserved and cb.reserved
            finally:
                await ca.close()
                await cb.close()

    asyncio.run(scenario())
