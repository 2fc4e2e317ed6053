"""Adapters from :class:`PeerLinks` to the job service's two send seams.

``LinksTensorSender`` is called from a rank's worker thread: it hands each payload to
the event loop with ``call_soon_threadsafe`` and queues it on the peer's link without
waiting (a rank is never more than one step ahead, so the queue stays short); only
when the queue is full does it fall back to ``send_wait`` (backpressure). A send that
fails is remembered and raised by the next ``send`` as ConnectionError.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from reconciler.drivers.peerlinks import PeerLinks
from reconciler.frames import Channel


class FrameSink(Protocol):
    """What receives job frames (a :class:`JobService`)."""

    def on_control(self, from_node: str, payload: bytes) -> None: ...
    def on_tensor(self, from_node: str, payload: bytes) -> None: ...


def route_frame(sink: FrameSink, node_id: str, channel: Channel, payload: bytes) -> bool:
    """Give a CONTROL or TENSOR frame to ``sink``; False for other channels."""
    if channel is Channel.CONTROL:
        sink.on_control(node_id, payload)
    elif channel is Channel.TENSOR:
        sink.on_tensor(node_id, payload)
    else:
        return False
    return True


class LinksTensorSender:
    """TensorSender over PeerLinks' TENSOR channel (thread-safe)."""

    def __init__(self, links: PeerLinks, loop: asyncio.AbstractEventLoop) -> None:
        self.links, self.loop = links, loop
        self.error: str | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def send(self, node_id: str, payload: bytes) -> None:
        if self.error is not None:
            raise ConnectionError(self.error)
        self.loop.call_soon_threadsafe(self._send, node_id, payload)

    def _send(self, node_id: str, payload: bytes) -> None:
        if not self.links.knows(node_id):
            self.error = f"no link to {node_id}"
        elif not self.links.send(node_id, Channel.TENSOR, payload):
            task = self.loop.create_task(self._send_wait(node_id, payload))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send_wait(self, node_id: str, payload: bytes) -> None:
        try:
            await self.links.send_wait(node_id, Channel.TENSOR, payload)
        except ConnectionError as exc:
            self.error = str(exc)


class ControlSender:
    """``send_control`` for JobService: queue a CONTROL frame; False when not queued."""

    def __init__(self, links: PeerLinks) -> None:
        self.links = links

    def __call__(self, node_id: str, payload: bytes) -> bool:
        return self.links.send(node_id, Channel.CONTROL, payload)
