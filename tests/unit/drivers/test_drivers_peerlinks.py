"""Peer links on loopback: mutual TLS with pool certificates, frames both ways,
strangers refused."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

from reconciler.certs.identity import NodeIdentity
from reconciler.certs.root import PoolRoot, create_pool_root
from reconciler.drivers.peerlinks import PeerLinks
from reconciler.drivers.tls import PeerIdentity, TlsFiles, client_context, server_context
from reconciler.frames import Channel

MemberFactory = Callable[[Path, PoolRoot, str], tuple[NodeIdentity, TlsFiles]]


def _links(
    identity: NodeIdentity, files: TlsFiles, inbox: asyncio.Queue[tuple[str, bytes]]
) -> PeerLinks:
    return PeerLinks(
        identity.node_id,
        server_context(files),
        client_context(files),
        lambda node, channel, payload: inbox.put_nowait((node, payload)),
        lambda peer: True,
    )


def test_two_members_exchange_frames_and_a_stranger_is_refused(
    tmp_path: Path, member_tls: MemberFactory
) -> None:
    root = create_pool_root(os.urandom(32), "p", time.time())
    other_root = create_pool_root(os.urandom(32), "other", time.time())
    a_id, a_files = member_tls(tmp_path, root, "a")
    b_id, b_files = member_tls(tmp_path, root, "b")
    s_id, s_files = member_tls(tmp_path, other_root, "stranger")

    async def scenario() -> None:
        a_in: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        b_in: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        s_in: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        a, b, s = (
            _links(a_id, a_files, a_in),
            _links(b_id, b_files, b_in),
            _links(s_id, s_files, s_in),
        )
        try:
            a_port = await a.listen("127.0.0.1", 0)
            b_port = await b.listen("127.0.0.1", 0)
            a.set_address(b_id.node_id, "127.0.0.1", b_port)
            b.set_address(a_id.node_id, "127.0.0.1", a_port)
            assert a.send(b_id.node_id, Channel.GOSSIP, b"ping")
            await b.send_wait(a_id.node_id, Channel.TENSOR, b"x" * 100_000)
            assert await asyncio.wait_for(b_in.get(), 10) == (a_id.node_id, b"ping")
            assert await asyncio.wait_for(a_in.get(), 10) == (b_id.node_id, b"x" * 100_000)
            assert a.stats[b_id.node_id].connected

            s_failed: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
            a_failed: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
            s.on_link_error = lambda node, error: s_failed.put_nowait((node, error))
            a.on_link_error = lambda node, error: a_failed.put_nowait((node, error))
            s.set_address(b_id.node_id, "127.0.0.1", b_port)
            s.send(b_id.node_id, Channel.GOSSIP, b"let me in")
            a.set_address(s_id.node_id, "127.0.0.1", b_port)  # wrong node at that address
            a.send(s_id.node_id, Channel.GOSSIP, b"hello?")
            node, error = await asyncio.wait_for(s_failed.get(), 10)  # b refused the stranger
            assert node == b_id.node_id and error == s.stats[b_id.node_id].last_error
            assert not s.stats[b_id.node_id].connected
            node, error = await asyncio.wait_for(a_failed.get(), 10)  # b is not the stranger
            assert node == s_id.node_id and f"is {b_id.node_id}, not" in error
            assert not a.stats[s_id.node_id].connected
            assert b_in.empty()
        finally:
            for links in (a, b, s):
                await links.close()

    asyncio.run(scenario())


def test_refused_by_policy(tmp_path: Path, member_tls: MemberFactory) -> None:
    root = create_pool_root(os.urandom(32), "p", time.time())
    a_id, a_files = member_tls(tmp_path, root, "a")
    b_id, b_files = member_tls(tmp_path, root, "b")

    async def scenario() -> None:
        inbox: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        refused: list[PeerIdentity] = []
        asked = asyncio.Event()

        def allowed(peer: PeerIdentity) -> bool:
            refused.append(peer)
            asked.set()
            return False

        b = PeerLinks(b_id.node_id, server_context(b_files), client_context(b_files),
                      lambda n, c, p: inbox.put_nowait((n, p)), allowed)  # fmt: skip
        a = _links(a_id, a_files, asyncio.Queue())
        try:
            port = await b.listen("127.0.0.1", 0)
            a.set_address(b_id.node_id, "127.0.0.1", port)
            a.send(b_id.node_id, Channel.GOSSIP, b"revoked me")
            await asyncio.wait_for(asked.wait(), 10)
            assert refused[0].node_id == a_id.node_id
            assert inbox.empty()
        finally:
            await a.close()
            await b.close()

    asyncio.run(scenario())
