"""Peer links keep a peer's frames in order whether a frame is written at once (an idle
connected link) or waits in the queue (behind a bulk frame that filled the socket)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

from reconciler.certs.identity import NodeIdentity
from reconciler.certs.root import PoolRoot, create_pool_root
from reconciler.drivers.peerlinks import PeerLinks
from reconciler.drivers.tls import TlsFiles, client_context, server_context
from reconciler.frames import Channel, encode_frame

MemberFactory = Callable[[Path, PoolRoot, str], tuple[NodeIdentity, TlsFiles]]
BULK = 256 * 1024  # more than a socket takes at once: later frames must queue behind it


def test_small_and_bulk_frames_arrive_in_the_order_sent(
    tmp_path: Path, member_tls: MemberFactory
) -> None:
    root = create_pool_root(os.urandom(32), "p", time.time())
    a_id, a_files = member_tls(tmp_path, root, "a")
    b_id, b_files = member_tls(tmp_path, root, "b")

    async def scenario() -> None:
        received: list[int] = []
        first, done = asyncio.Event(), asyncio.Event()
        count = 200  # fewer than a link queues (QUEUE_FRAMES)

        def on_frame(node: str, channel: Channel, payload: bytes) -> None:
            received.append(int(payload[:8]))
            first.set()
            if len(received) == count + 1:
                done.set()

        noop: Callable[[str, Channel, bytes], None] = lambda n, c, p: None  # noqa: E731
        a = PeerLinks(a_id.node_id, server_context(a_files), client_context(a_files),
                      noop, lambda peer: True)  # fmt: skip
        b = PeerLinks(b_id.node_id, server_context(b_files), client_context(b_files),
                      on_frame, lambda peer: True)  # fmt: skip
        try:
            port = await b.listen("127.0.0.1", 0)
            a.set_address(b_id.node_id, "127.0.0.1", port)
            frames = [(Channel.GOSSIP, b"%08d" % 0)]
            assert a.send(b_id.node_id, *frames[0])
            await asyncio.wait_for(first.wait(), 10)  # connected: small frames go at once
            for i in range(1, count + 1):
                if i % 50 == 25:
                    frames.append((Channel.TENSOR, b"%08d" % i + bytes(BULK)))
                    await a.send_wait(b_id.node_id, *frames[-1])
                else:
                    frames.append((Channel.GOSSIP, b"%08d" % i))
                    assert a.send(b_id.node_id, *frames[-1])
            await asyncio.wait_for(done.wait(), 20)
            assert received == list(range(count + 1))
            sent = sum(len(encode_frame(channel, payload)) for channel, payload in frames)
            for _ in range(100):  # the writer task counts a frame once it is drained
                if a.stats[b_id.node_id].bytes_sent == sent:
                    break
                await asyncio.sleep(0)
            assert a.stats[b_id.node_id].bytes_sent == sent
        finally:
            await a.close()
            await b.close()

    asyncio.run(scenario())
