"""Resource limits of peer links: small frames on control channels, a deadline on the
TLS handshake, connection caps per address and per node (loopback only, bounded)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.certs.identity import NodeIdentity
from reconciler.certs.root import PoolRoot, create_pool_root
from reconciler.drivers import peerlinks
from reconciler.drivers.gate import ConnectionGate
from reconciler.drivers.peerlinks import PeerLinks
from reconciler.drivers.tls import TlsFiles, client_context, server_context
from reconciler.frames import (
    CONTROL_FRAME,
    HEADER,
    Channel,
    FrameDecoder,
    FrameError,
    encode_frame,
)

MemberFactory = Callable[[Path, PoolRoot, str], tuple[NodeIdentity, TlsFiles]]


@pytest.mark.parametrize("channel", [Channel.GOSSIP, Channel.CONTROL])
def test_a_big_control_frame_is_refused_at_its_header(channel: Channel) -> None:
    decoder = FrameDecoder()
    with pytest.raises(FrameError):
        decoder.feed(HEADER.pack(CONTROL_FRAME + 1, channel))  # nothing buffered first
    with pytest.raises(ValueError):
        encode_frame(channel, b"x" * CONTROL_FRAME)


def test_tensor_frames_may_still_be_large() -> None:
    payload = b"t" * (CONTROL_FRAME * 2)
    assert FrameDecoder().feed(encode_frame(Channel.TENSOR, payload)) == [(Channel.TENSOR, payload)]


def test_the_gate_caps_total_per_address_and_per_identity() -> None:
    gate = ConnectionGate(total=3, per_address=2, per_identity=1)
    assert gate.enter("192.0.2.1") and gate.enter("192.0.2.1")
    assert not gate.enter("192.0.2.1")
    assert gate.enter("192.0.2.2")
    assert not gate.enter("192.0.2.3")
    gate.leave("192.0.2.1")
    assert gate.enter("192.0.2.3")
    assert gate.claim("node-a") and not gate.claim("node-a")
    gate.release("node-a")
    assert gate.claim("node-a")
    assert gate.refused == {"per_address": 1, "total": 1, "per_identity": 1}


def _links(
    identity: NodeIdentity, files: TlsFiles, gate: ConnectionGate | None = None
) -> PeerLinks:
    return PeerLinks(
        identity.node_id, server_context(files), client_context(files),
        lambda node, channel, payload: None, lambda peer: True, gate,
    )  # fmt: skip


def test_a_silent_connection_is_closed_at_the_handshake_deadline(
    tmp_path: Path, member_tls: MemberFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(peerlinks, "HANDSHAKE_TIMEOUT", 0.3)
    root = create_pool_root(os.urandom(32), "p", time.time())
    identity, files = member_tls(tmp_path, root, "a")

    async def scenario() -> None:
        links = _links(identity, files)
        port = await links.listen("127.0.0.1", 0)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert await asyncio.wait_for(reader.read(), 20) == b""  # closed, never answered
            writer.close()
        finally:
            await links.close()

    asyncio.run(scenario())


def test_connections_over_the_per_node_cap_are_closed(
    tmp_path: Path, member_tls: MemberFactory
) -> None:
    root = create_pool_root(os.urandom(32), "p", time.time())
    server_id, server_files = member_tls(tmp_path, root, "server")
    _, client_files = member_tls(tmp_path, root, "client")

    async def scenario() -> None:
        links = _links(server_id, server_files, ConnectionGate(per_identity=2))
        port = await links.listen("127.0.0.1", 0)
        ctx = client_context(client_files)
        opened = []
        try:
            for _ in range(3):
                opened.append(await asyncio.open_connection("127.0.0.1", port, ssl=ctx))
            third_reader = opened[2][0]
            assert await asyncio.wait_for(third_reader.read(), 20) == b""
            assert links.gate.refused["per_identity"] == 1
            first_writer = opened[0][1]
            assert not first_writer.is_closing()
        finally:
            for _reader, writer in opened:
                writer.close()
            await links.close()

    asyncio.run(scenario())


def test_connections_over_the_per_address_cap_are_closed(
    tmp_path: Path, member_tls: MemberFactory
) -> None:
    root = create_pool_root(os.urandom(32), "p", time.time())
    server_id, server_files = member_tls(tmp_path, root, "server")
    clients = [member_tls(tmp_path, root, f"c{i}")[1] for i in range(3)]

    async def scenario() -> None:
        links = _links(server_id, server_files, ConnectionGate(per_address=2))
        port = await links.listen("127.0.0.1", 0)
        opened = []
        try:
            for files in clients:
                ctx = client_context(files)
                opened.append(await asyncio.open_connection("127.0.0.1", port, ssl=ctx))
            assert await asyncio.wait_for(opened[2][0].read(), 20) == b""
            assert links.gate.refused["per_address"] == 1
        finally:
            for _reader, writer in opened:
                writer.close()
            await links.close()

    asyncio.run(scenario())


def test_a_control_frame_over_the_limit_is_dropped_and_counted_when_sent(
    tmp_path: Path, member_tls: MemberFactory
) -> None:
    root = create_pool_root(os.urandom(32), "p", time.time())
    identity, files = member_tls(tmp_path, root, "a")

    async def scenario() -> None:
        links = _links(identity, files)
        links.set_address("node-0000000000000001", "127.0.0.1", 9)
        try:
            assert not links.send("node-0000000000000001", Channel.GOSSIP, b"g" * CONTROL_FRAME)
            assert links.stats["node-0000000000000001"].frames_dropped == 1
        finally:
            await links.close()

    asyncio.run(scenario())
