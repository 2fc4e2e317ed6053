"""The relay's connection limits on loopback: a handshake deadline, caps per address
and per member, small queues; and its rendezvous over real sockets."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from reconciler.drivers.service_tls import load_served_pools
from reconciler.drivers.tls import client_context, server_context
from reconciler.relay import server as relay_server
from reconciler.relay.client import RelayClient
from reconciler.relay.core import RelayLimits
from reconciler.relay.messages import PeerEntry, Register
from reconciler.relay.server import RelayServer


async def _start(pool: Any, limits: RelayLimits | None = None) -> tuple[RelayServer, int]:
    pools = load_served_pools(pool.home, "relay", [pool.ca_file], time.time())
    server = RelayServer(pools, limits, pool.home)
    return server, await server.start("127.0.0.1", 0)


def test_queues_are_small_by_default() -> None:
    limits = RelayLimits()
    assert limits.queue_frames * 64 * 1024 <= 4 * 2**20


def test_a_silent_connection_is_closed_at_the_handshake_deadline(
    pool: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(relay_server, "HANDSHAKE_TIMEOUT", 0.3)

    async def scenario() -> None:
        server, port = await _start(pool)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert await asyncio.wait_for(reader.read(), 20) == b""
            writer.close()
        finally:
            await server.close()

    asyncio.run(scenario())


def test_connections_over_the_caps_are_closed(pool: Any) -> None:
    a, b = pool.member("a"), pool.member("b")

    async def scenario() -> None:
        limits = RelayLimits(max_connections_per_address=2, max_connections_per_member=1)
        server, port = await _start(pool, limits)
        opened = []
        try:
            for member in (a, a, b, b):
                ctx = client_context(member.files)
                opened.append(
                    await asyncio.open_connection(
                        "127.0.0.1", port, ssl=ctx, server_hostname=pool.root.pool_id
                    )
                )
            second_a, second_b = opened[1][0], opened[3][0]
            assert await asyncio.wait_for(second_a.read(), 20) == b""  # a: one per member
            assert await asyncio.wait_for(second_b.read(), 20) == b""  # over 2 per address
            assert server.gate.refused == {"per_identity": 1, "per_address": 1}
        finally:
            for _reader, writer in opened:
                writer.close()
            await server.close()

    asyncio.run(scenario())


def test_members_meet_at_the_relay_rendezvous(pool: Any) -> None:
    a, b = pool.member("a"), pool.member("b")

    async def scenario() -> None:
        server, port = await _start(pool)
        heard: asyncio.Queue[tuple[PeerEntry, ...]] = asyncio.Queue()
        clients = []
        try:
            for member, address in ((a, "192.0.2.1:7000"), (b, "192.0.2.2:7000")):
                client = RelayClient(
                    "127.0.0.1", port, member.node_id, pool.root.pool_id,
                    client_context(member.files), server_context(member.files),
                )  # fmt: skip
                client.on_peers = heard.put_nowait if member is b else None
                client.register(Register(member.node_id, (address,), 1, 1))
                client.start()
                await client.wait_reserved(10)
                clients.append(client)
            while not (entries := await asyncio.wait_for(heard.get(), 20)):
                pass
            assert [(e.node_id, e.addresses) for e in entries] == [(a.node_id, ("192.0.2.1:7000",))]
        finally:
            for client in clients:
                await client.close()
            await server.close()

    asyncio.run(scenario())
