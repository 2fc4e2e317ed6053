"""Agents on the simulated network and clock: beacons, gossip and jobs together.

Each :class:`SimAgent` runs the three sans-IO machines the real agent runs
(``BeaconProtocol``, ``GossipProtocol``, ``JobMachine``) wired as the pool runtime wires
them: a verified presence beacon seeds gossip, a member that gossip declares DEAD or
LEFT is ``member_lost`` to the jobs, and jobs are offered on gossip's ring. The engine
is :class:`FakeEngine` (deterministic tokens in simulated time). One heap orders every
delivery and timer by (time, serial); each channel has its own :class:`LinkModel`
(beacons are UDP; gossip, control and tensors ride TLS links, which lose nothing, but
tests may still make them slow or lossy). Same seed, same history.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field
from typing import Any

from reconciler.beacon.config import Advert, BeaconConfig, Membership
from reconciler.beacon.events import PeerSeen
from reconciler.beacon.machine import BeaconProtocol
from reconciler.certs.identity import NodeIdentity
from reconciler.certs.member import sign_member_certificate, verify_member_certificate
from reconciler.certs.root import PoolRoot, create_pool_root
from reconciler.gossip import events as gossip_events
from reconciler.gossip.config import GossipConfig
from reconciler.gossip.machine import GossipProtocol
from reconciler.gossip.messages import NodeMeta
from reconciler.inference.sampling import SamplingParams
from reconciler.jobs import machineevents as ev
from reconciler.jobs.coordinator import make_offer
from reconciler.jobs.machine import JobMachine
from reconciler.jobs.results import JobRequest
from tests.sim.fakeengine import FakeEngine
from tests.sim.simnet import LinkModel

EPOCH = 1_750_000_000.0  # the beacons' wall clock at simulated time 0
GROUP = ("239.192.0.1", 42424)
CHANNELS = ("beacon", "gossip", "control", "tensor")


@dataclass
class Links:
    """One link model per channel."""

    beacon: LinkModel = field(default_factory=LinkModel)
    gossip: LinkModel = field(default_factory=LinkModel)
    control: LinkModel = field(default_factory=LinkModel)
    tensor: LinkModel = field(default_factory=LinkModel)


@dataclass
class SimAgent:
    """One device: its three machines, its engine, and what its jobs ended with."""

    node_id: str
    host: str
    beacon: BeaconProtocol
    gossip: GossipProtocol
    jobs: JobMachine
    engine: FakeEngine
    up: bool = True
    outcomes: dict[int, tuple[float, ev.JobSucceeded | ev.JobEnded]] = field(default_factory=dict)
    tokens: dict[int, list[tuple[float, int]]] = field(default_factory=dict)
    log: list[tuple[float, str]] = field(default_factory=list)
    timer_at: float | None = None


class MeshSim:
    """N agents on one simulated LAN."""

    def __init__(
        self, seed: int, links: Links | None = None, *, ready_timeout: float = 30.0,
        done_timeout: float = 5.0, collective_timeout: float = 8.0,
    ) -> None:  # fmt: skip
        self.rng = random.Random(seed)
        self.links = links or Links()
        self.root: PoolRoot = create_pool_root(b"\x01" * 32, "sim", EPOCH)
        self.gossip_config = GossipConfig(pool_id=self.root.pool_id)
        self.timeouts = (ready_timeout, done_timeout, collective_timeout)
        self.now = 0.0
        self.agents: dict[str, SimAgent] = {}
        self.cut: set[tuple[str, str, str]] = set()  # (channel, src, dst) that lose everything
        self._heap: list[tuple[float, int, str, str, str, Any]] = []
        self._serial = 0

    # -- topology ------------------------------------------------------------------------

    def add_agent(self, index: int) -> SimAgent:
        ident = NodeIdentity(bytes([index + 16]) * 32)
        host = f"10.0.0.{index + 10}"
        name = f"dev-{index}"
        der = sign_member_certificate(self.root, ident.public_key, name, "member", EPOCH)
        membership = Membership(
            self.root.anchor, der, verify_member_certificate(der, self.root.anchor, EPOCH)
        )
        beacon = BeaconProtocol(
            BeaconConfig(self.root.pool_id, (GROUP,), interval=2.0), ident,
            Advert(name, host, 7000, 8 << 30, 4), random.Random(self.rng.getrandbits(64)),
            membership=membership,
        )  # fmt: skip
        meta = NodeMeta(name, f"{host}:7000", 8 << 30, 4)
        gossip = GossipProtocol(
            ident.node_id,
            meta,
            self.gossip_config,
            random.Random(self.rng.getrandbits(64)),
            self.now,
        )
        ready, done, collective = self.timeouts
        agent = SimAgent(
            ident.node_id, host, beacon, gossip,
            JobMachine(ident.node_id, ready_timeout=ready, done_timeout=done, ring_view=lambda: gossip.ring),
            FakeEngine(ident.node_id, collective_timeout=collective),
        )  # fmt: skip
        self.agents[agent.node_id] = agent
        beacon.start(EPOCH + self.now)
        self._pump(agent)
        return agent

    def crash(self, node_id: str) -> None:
        """The device goes dark: it sends nothing more and hears nothing."""
        agent = self.agents[node_id]
        agent.up, agent.timer_at = False, None

    def ids(self) -> list[str]:
        return list(self.agents)

    # -- jobs ----------------------------------------------------------------------------

    def coordinate(
        self, node_id: str, prompt: list[int], max_tokens: int, job_id: str = "job"
    ) -> int:
        """Offer a job on ``node_id``'s converged ring; its session."""
        agent = self.agents[node_id]
        ring = agent.gossip.ring
        assert ring is not None, "coordinate after the ring converged"
        session = self.rng.getrandbits(64)
        request = JobRequest(
            job_id, "sim-model", prompt, SamplingParams(max_tokens=max_tokens), ring
        )
        agent.jobs.coordinate(make_offer(request, session), self.now)
        self._pump(agent)
        return session

    # -- driving -------------------------------------------------------------------------

    def _push(self, at: float, kind: str, node_id: str, src: str = "", data: Any = None) -> None:
        self._serial += 1
        heapq.heappush(self._heap, (at, self._serial, kind, node_id, src, data))

    def _transmit(self, channel: str, src: str, dst: str, data: Any) -> None:
        if (channel, src, dst) in self.cut:
            return
        link: LinkModel = getattr(self.links, channel)
        for delay in link.delays(self.rng):
            self._push(self.now + delay, channel, dst, src, data)

    def _pump(self, agent: SimAgent) -> None:
        """Move one agent's outputs between its machines, onto the wire and its timer."""
        for _ in range(1000):
            if not self._pump_once(agent):
                break
        due = [t for t in self._timers(agent).values() if t is not None]
        at = max(min(due), self.now) if due else None
        if at is not None and at != agent.timer_at:
            agent.timer_at = at
            self._push(at, "timer", agent.node_id)

    def _pump_once(self, agent: SimAgent) -> bool:
        busy = False
        for data, _ in agent.beacon.datagrams_to_send(EPOCH + self.now):
            busy = True
            for other in self.agents.values():
                if other is not agent:
                    self._transmit(
                        "beacon", agent.node_id, other.node_id, (data, (agent.host, 42424))
                    )
        while (beacon_event := agent.beacon.next_event()) is not None:
            busy = True
            if isinstance(beacon_event, PeerSeen) and beacon_event.node_id != agent.node_id:
                e = beacon_event
                agent.gossip.add_seed(
                    e.node_id, NodeMeta(e.name, f"{e.host}:{e.port}", e.memory_bytes, e.cores)
                )
        for dst, data in agent.gossip.messages_to_send():
            busy = True
            self._transmit("gossip", agent.node_id, dst, data)
        while (gossip_event := agent.gossip.next_event()) is not None:
            busy = True
            if isinstance(
                gossip_event, gossip_events.MemberStateChanged
            ) and gossip_event.new.name in ("DEAD", "LEFT"):
                agent.log.append((self.now, f"lost {gossip_event.node_id}"))
                agent.jobs.member_lost(gossip_event.node_id, self.now)
        for send in agent.jobs.messages_to_send():
            busy = True
            self._transmit("control", agent.node_id, send.node, send.payload)
        while (job_event := agent.jobs.next_event()) is not None:
            busy = True
            self._on_job_event(agent, job_event)
        for dst, payload in agent.engine.tensors:
            busy = True
            self._transmit("tensor", agent.node_id, dst, payload)
        agent.engine.tensors.clear()
        reports, agent.engine.reports = agent.engine.reports, []
        for method, args in reports:
            busy = True
            getattr(agent.jobs, method)(*args, self.now)
        return busy

    def _on_job_event(self, agent: SimAgent, event: ev.Event) -> None:
        if isinstance(event, ev.LoadSlice):
            agent.engine.load(event.offer, self.now)
        elif isinstance(event, ev.StartSlice):
            agent.engine.start(event.session, self.now)
        elif isinstance(event, ev.StopSlice):
            agent.log.append((self.now, f"stop {event.reason}"))
            agent.engine.stop(event.session)
        elif isinstance(event, ev.TokenOut):
            agent.tokens.setdefault(event.session, []).append((self.now, event.token.token_id))
        elif isinstance(event, ev.JobSucceeded | ev.JobEnded):
            agent.outcomes[event.session] = (self.now, event)

    def flush(self, node_id: str) -> None:
        """Collect what an agent produced after the test called one of its machines."""
        self._pump(self.agents[node_id])

    def step(self) -> bool:
        if not self._heap:
            return False
        at, _, kind, node_id, src, data = heapq.heappop(self._heap)
        self.now = max(self.now, at)
        agent = self.agents[node_id]
        if not agent.up or (kind != "timer" and not self.agents[src].up):
            return True
        if kind == "timer":
            if agent.timer_at != at:
                return True
            agent.timer_at = None
            self._fire(agent)
        elif kind == "beacon":
            agent.beacon.receive_datagram(data[0], data[1], EPOCH + self.now)
        elif kind == "gossip":
            agent.gossip.receive_message(src, data, self.now)
        elif kind == "control":
            agent.jobs.receive_message(src, data, self.now)
        else:
            agent.engine.deliver(src, data, self.now)
        self._pump(agent)
        return True

    def _timers(self, agent: SimAgent) -> dict[str, float | None]:
        """Each machine's next deadline on the simulated clock."""
        beacon = agent.beacon.get_timer()
        return {
            "beacon": None if beacon is None else beacon - EPOCH,
            "gossip": agent.gossip.get_timer(),
            "jobs": agent.jobs.get_timer(),
            "engine": agent.engine.get_timer(),
        }

    def _fire(self, agent: SimAgent) -> None:
        now = self.now
        for name, at in self._timers(agent).items():
            if at is None or at > now:
                continue
            if name == "beacon":
                agent.beacon.handle_timer(max(EPOCH + now, agent.beacon.get_timer() or 0.0))
            else:
                getattr(agent, name).handle_timer(now)

    def run_until(self, predicate: Any, max_time: float) -> float | None:
        """Run until ``predicate()`` holds; the simulated time, or None at ``max_time``."""
        end = self.now + max_time
        while not predicate():
            if not self._heap or self._heap[0][0] > end:
                self.now = max(self.now, end)
                return None
            self.step()
        return self.now

    def run_for(self, duration: float) -> None:
        self.run_until(lambda: False, duration)

    def converged(self) -> bool:
        up = sorted(a.node_id for a in self.agents.values() if a.up)
        rings = set()
        for node_id in up:
            g = self.agents[node_id].gossip
            if not g.converged or g.ring is None or sorted(s.node_id for s in g.ring.members) != up:
                return False
            rings.add(g.ring.hash)
        return len(rings) == 1
