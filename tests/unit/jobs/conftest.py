"""Fixtures for the job tests: tiny models, rings with chosen columns, a fake network."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Collection
from pathlib import Path

import pytest

from reconciler.gossip.ring import Ring, RingSlot, ring_hash
from reconciler.jobs.service import JobService
from reconciler.jobs.shards import ShardCache

MODELS = Path(__file__).resolve().parents[2] / "fixtures" / "models"


def make_ring(columns: dict[str, tuple[int, int]], shard_columns: int = 8192) -> Ring:
    """A ring whose members (in node-id order) hold the given column ranges."""
    slots = tuple(
        RingSlot(node, node, "127.0.0.1", pos, *columns[node])
        for pos, node in enumerate(sorted(columns))
    )
    return Ring("pool", 3, ring_hash("pool", shard_columns, slots), shard_columns, slots)


class FakeNet:
    """Delivers frames between JobServices on one loop; ``dead`` nodes send and get nothing."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.services: dict[str, JobService] = {}
        self.dead: set[str] = set()
        self.control_frames = 0
        self.in_flight = 0  # control frames sent and not yet delivered
        self._quiet = asyncio.Event()

    def add(
        self, node: str, resolver: Callable[[str], Path] | None = None, **kw: object
    ) -> JobService:
        svc = JobService(
            node,
            send_control=lambda dst, payload: self._send(node, dst, payload, True),
            tensor_transport_factory=lambda: _Sender(self, node),
            model_resolver=resolver or (lambda ref: MODELS / ref),
            cache=ShardCache(),
            **kw,  # type: ignore[arg-type]
        )
        self.services[node] = svc
        return svc

    def _send(self, src: str, dst: str, payload: bytes, control: bool) -> bool:
        self.control_frames += control
        self.in_flight += 1
        self.loop.call_soon(self._deliver_control, src, dst, payload)
        return True

    def _deliver_control(self, src: str, dst: str, payload: bytes) -> None:
        self.in_flight -= 1
        try:
            self._deliver(src, dst, payload, True)
        finally:
            if self.in_flight == 0:
                self._quiet.set()

    async def settled(self) -> None:
        """Wait until every control frame sent so far (and those they caused) arrived."""
        while self.in_flight:
            self._quiet.clear()
            await self._quiet.wait()

    def _deliver(self, src: str, dst: str, payload: bytes, control: bool) -> None:
        if src in self.dead or dst in self.dead or dst not in self.services:
            return
        svc = self.services[dst]
        (svc.on_control if control else svc.on_tensor)(src, payload)

    def close(self) -> None:
        """Abort everything and wait for the job threads to stop."""
        for svc in self.services.values():
            svc.close()
        for thread in job_threads():
            thread.join(5.0)


def job_threads(nodes: Collection[str] | None = None) -> list[threading.Thread]:
    """Live job threads (of ``nodes`` only, when given); named job:<job>:<node>:<what>."""
    return [
        t
        for t in threading.enumerate()
        if t.name.startswith("job:")
        and t.is_alive()
        and (nodes is None or t.name.rsplit(":", 2)[1] in nodes)
    ]


class _Sender:
    def __init__(self, net: FakeNet, node: str) -> None:
        self.net, self.node = net, node

    def send(self, node_id: str, payload: bytes) -> None:
        self.net.loop.call_soon_threadsafe(self.net._deliver, self.node, node_id, payload, False)


@pytest.fixture
def models() -> Path:
    return MODELS


@pytest.fixture
def ring_of() -> Callable[..., Ring]:
    return make_ring


@pytest.fixture
def fake_net() -> type[FakeNet]:
    return FakeNet


@pytest.fixture
def live_job_threads() -> Callable[..., list[threading.Thread]]:
    return job_threads
