"""A deterministic simulated network and clock that drives N ``GossipProtocol`` nodes.

One priority queue holds message deliveries and node timers ordered by (time,
serial). Links can lose, delay (uniform range), duplicate and reorder (an extra
delay for some messages) messages; partitions split nodes into groups that cannot
talk; nodes can crash (their state is lost) and restart with a fresh machine.
Everything random comes from one ``random.Random(seed)``: same seed, same history.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from reconciler.gossip.config import GossipConfig
from reconciler.gossip.events import Event
from reconciler.gossip.machine import GossipProtocol, Verifier
from reconciler.gossip.messages import NodeMeta

E = TypeVar("E", bound=Event)


@dataclass(frozen=True)
class LinkModel:
    """Impairments applied to every message."""

    loss: float = 0.0
    delay: tuple[float, float] = (0.0005, 0.003)
    duplicate: float = 0.0
    reorder: float = 0.0
    reorder_delay: float = 0.02

    def delays(self, rng: random.Random) -> list[float]:
        """When the copies of one message arrive, after it is sent (none: it was lost)."""
        out = []
        for _ in range(2 if rng.random() < self.duplicate else 1):
            if rng.random() < self.loss:
                continue
            delay = rng.uniform(*self.delay)
            if rng.random() < self.reorder:
                delay += rng.uniform(0, self.reorder_delay)
            out.append(delay)
        return out


@dataclass
class SimNode:
    """One simulated device: its machine, whether it runs, and what it reported."""

    node_id: str
    meta: NodeMeta
    protocol: GossipProtocol
    up: bool = True
    life: int = 0
    timer_at: float | None = None
    events: list[tuple[float, Event]] = field(default_factory=list)


def node_name(i: int) -> str:
    return f"node-{i:016x}"


def default_meta(node_id: str, memory_bytes: int = 8 << 30) -> NodeMeta:
    port = 7000 + int(node_id.rsplit("-", 1)[-1], 16) % 1000
    return NodeMeta(node_id.replace("node", "dev"), f"10.0.0.1:{port}", memory_bytes, 4)


class SimNet:
    """N gossip nodes on a simulated network and clock."""

    def __init__(
        self,
        seed: int,
        link: LinkModel | None = None,
        config: GossipConfig | None = None,
        verify: Verifier | None = None,
    ) -> None:
        self.rng = random.Random(seed)
        self.link = link or LinkModel()
        self.config = config or GossipConfig(pool_id="sim-pool")
        self.verify = verify
        self.now = 0.0
        self.nodes: dict[str, SimNode] = {}
        self.delivered = 0
        self._heap: list[tuple[float, int, str, str, int, bytes, str]] = []
        self._serial = 0
        self._groups: list[frozenset[str]] | None = None

    # -- topology -------------------------------------------------------------

    def add_node(
        self, node_id: str, seeds: Iterable[str] = (), meta: NodeMeta | None = None
    ) -> SimNode:
        meta = meta or default_meta(node_id)
        proto = self._machine(node_id, meta)
        node = SimNode(node_id, meta, proto)
        self.nodes[node_id] = node
        for seed in seeds:
            proto.add_seed(seed, self.nodes[seed].meta if seed in self.nodes else meta)
        self._pump(node)
        return node

    def _machine(self, node_id: str, meta: NodeMeta) -> GossipProtocol:
        rng = random.Random(self.rng.getrandbits(64))
        return GossipProtocol(node_id, meta, self.config, rng, self.now, verify=self.verify)

    def crash(self, node_id: str) -> None:
        node = self.nodes[node_id]
        node.up = False
        node.timer_at = None

    def restart(self, node_id: str, seeds: Iterable[str]) -> None:
        node = self.nodes[node_id]
        node.protocol = self._machine(node_id, node.meta)
        node.up = True
        node.life += 1
        for seed in seeds:
            node.protocol.add_seed(seed, self.nodes[seed].meta)
        self._pump(node)

    def partition(self, *groups: Iterable[str]) -> None:
        self._groups = [frozenset(g) for g in groups]

    def heal(self) -> None:
        self._groups = None

    def can_talk(self, a: str, b: str) -> bool:
        if self._groups is None:
            return True
        ga = next((g for g in self._groups if a in g), None)
        gb = next((g for g in self._groups if b in g), None)
        return ga == gb

    def up_ids(self) -> list[str]:
        return sorted(n.node_id for n in self.nodes.values() if n.up)

    # -- driving ----------------------------------------------------------------

    def _push(
        self, at: float, kind: str, node_id: str, life: int, data: bytes = b"", src: str = ""
    ) -> None:
        self._serial += 1
        heapq.heappush(self._heap, (at, self._serial, kind, node_id, life, data, src))

    def _pump(self, node: SimNode) -> None:
        """Collect a node's output: events, messages onto links, its next timer."""
        proto = node.protocol
        while (event := proto.next_event()) is not None:
            node.events.append((self.now, event))
        for to, data in proto.messages_to_send():
            self._transmit(node.node_id, to, data)
        timer = proto.get_timer()
        at = None if timer is None else max(timer, self.now)
        if at is not None and at != node.timer_at:
            node.timer_at = at
            self._push(at, "timer", node.node_id, node.life)

    def _transmit(self, src: str, dst: str, data: bytes) -> None:
        for delay in self.link.delays(self.rng):
            self._push(self.now + delay, "msg", dst, -1, data, src)

    def flush(self, node_id: str) -> None:
        """Collect what a node produced after the test called its API directly."""
        self._pump(self.nodes[node_id])

    def deliver(self, src: str, dst: str, data: bytes) -> None:
        """Hand ``data`` to ``dst`` now, as if ``src`` had sent it (injection)."""
        node = self.nodes[dst]
        node.protocol.receive_message(src, data, self.now)
        self._pump(node)

    def step(self) -> bool:
        """Process the next queued item; False when nothing is left."""
        if not self._heap:
            return False
        at, _, kind, node_id, life, data, src = heapq.heappop(self._heap)
        self.now = max(self.now, at)
        node = self.nodes.get(node_id)
        if node is None or not node.up:
            return True
        if kind == "timer":
            if life != node.life or node.timer_at != at:
                return True
            node.timer_at = None
            node.protocol.handle_timer(self.now)
        else:
            if not self.can_talk(src, node_id):
                return True
            self.delivered += 1
            node.protocol.receive_message(src, data, self.now)
        self._pump(node)
        return True

    def run_for(self, duration: float) -> None:
        end = self.now + duration
        while self._heap and self._heap[0][0] <= end:
            self.step()
        self.now = max(self.now, end)

    def run_until(self, predicate: Callable[[], bool], max_time: float) -> float | None:
        """Run until ``predicate()`` holds; its simulated time, or None at ``max_time``."""
        end = self.now + max_time
        while not predicate():
            if not self._heap or self._heap[0][0] > end:
                self.now = max(self.now, end)
                return None
            self.step()
        return self.now

    # -- observations -----------------------------------------------------------

    def converged(self, expected: Iterable[str] | None = None) -> bool:
        """Every up node converged on one ring made of exactly ``expected``."""
        want = sorted(expected) if expected is not None else self.up_ids()
        keys = set()
        for node_id in self.up_ids():
            proto = self.nodes[node_id].protocol
            ring = proto.ring
            if not proto.converged or ring is None:
                return False
            if [s.node_id for s in ring.members] != want:
                return False
            keys.add((ring.epoch, ring.hash))
        return len(keys) == 1

    def events_of(self, node_id: str, kind: type[E]) -> list[tuple[float, E]]:
        return [(t, e) for t, e in self.nodes[node_id].events if isinstance(e, kind)]


def start_pool(net: SimNet, n: int, seeding: str = "first", stagger: float = 0.0) -> list[str]:
    """Add ``n`` nodes; each is seeded with the first node (``first``) or all earlier
    ones (``all``), optionally ``stagger`` seconds apart."""
    ids = [node_name(i) for i in range(n)]
    for i, node_id in enumerate(ids):
        seeds = ids[:1] if seeding == "first" else ids[:i]
        net.add_node(node_id, seeds=[s for s in seeds if s != node_id])
        if stagger:
            net.run_for(stagger)
    return ids
