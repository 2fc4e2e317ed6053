"""Everything that runs for one pool this device belongs to, as admin or member:
presence beacons (and, on the admin, join answers), peer links, SWIM gossip and the
ring; it publishes peers and the ring to the store and writes the topology file."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from manifests import Member, Pool
from reconciler import material, observed
from reconciler.admission_records import mark_revoked, record_join
from reconciler.beacon.config import Advert, BeaconConfig
from reconciler.beacon.events import DatagramDropped, JoinAnswered, JoinRequested, PeerSeen
from reconciler.beacon.machine import BeaconProtocol
from reconciler.certs.desk import AdminDesk
from reconciler.context import DeviceContext, cores, memory_bytes, memory_offer_setting
from reconciler.drivers.netif import Interface, dial_host
from reconciler.drivers.peerlinks import PeerLinks
from reconciler.drivers.tls import PeerIdentity, client_context, server_context
from reconciler.frames import Channel
from reconciler.gossip import events as gossip_events
from reconciler.gossip.config import GossipConfig
from reconciler.gossip.machine import GossipProtocol
from reconciler.gossip.messages import NodeMeta
from reconciler.home import write_atomic
from reconciler.jobs.links import ControlSender, LinksTensorSender, route_frame
from reconciler.jobs.service import JobService
from reconciler.models import resolve_name
from reconciler.placement.inputs import LinkMeasure, MemberMeasure
from reconciler.placement.observed import plan_inputs
from reconciler.poolinfo import PoolInfo
from reconciler.pools import load_root
from reconciler.relay.messages import PeerEntry, Register
from reconciler.runtime.beaconsockets import (
    BeaconSockets,
    choose_interfaces,
    destinations,
    effective_discovery,
    open_beacon_sockets,
)
from reconciler.runtime.measuring import measure_at_start, refresh_free_memory, self_measures
from reconciler.runtime.publishing import (
    PeerSources,
    beacon_stats,
    measure_table,
    peer_rows,
    ring_document,
)
from reconciler.runtime.relays import PoolRelays
from reconciler.runtime.rendezvous import (
    ControlPlaneRendezvous,
    Seeds,
    entries_from_json,
    self_entry,
)
from reconciler.runtime.revocations import Revocations
from reconciler.store_admin import charge_token

if TYPE_CHECKING:  # imported when the runtime starts
    from reconciler.runtime.messagepump import MessagePump
    from reconciler.store import Store

log = logging.getLogger("meshnet.pool")

PUBLISH_SECONDS = 5.0  # counters and last seen (volatile); members and the ring at once
STATS_SECONDS = 5.0  # gossip counters for /metrics
PROBE_INTERVAL = 0.3  # crash -> re-formed ring in about 2 s on a LAN (bench/membership.py)
LEAVE_GRACE_SECONDS = 0.3

FrameHandler = Callable[[str, Channel, bytes], None]
DECISIVE_EVENTS = (
    gossip_events.MemberJoined,
    gossip_events.MemberStateChanged,
    gossip_events.MemberRevoked,
    gossip_events.RingChanged,
    gossip_events.RingConverged,
)  # what changes the published members or ring: written at once


class PoolRuntime:
    """One pool's membership machinery on this device."""

    def __init__(self, ctx: DeviceContext, pool: Pool, info: PoolInfo) -> None:
        self.ctx, self.pool, self.info = ctx, pool, info
        self.generation = pool.metadata.generation
        self.revocations = Revocations(ctx.store, info)
        self.extra_frames: dict[Channel, FrameHandler] = {}
        self.beacon_peers: dict[str, dict[str, Any]] = {}
        self.gossip_drops: Counter[str] = Counter()
        self._hinted: set[str] = set()  # links made for hinted nodes, dropped with the hint
        self._cache: dict[str, Any] = {}
        self._decisive: list[tuple[Any, ...]] | None = None  # peers as controllers see them
        self._publish_due: asyncio.Handle | None = None
        self._links: PeerLinks | None = None
        self._gossip: GossipProtocol | None = None
        self._gossip_pump: MessagePump | None = None
        self._changed_at: float | None = None
        self._converge_seconds: float | None = None
        self._next_stats = 0.0
        self._measured: dict[str, dict[str, Any]] = {}  # per node, refreshed with the stats
        self._beacon: BeaconProtocol | None = None
        self._sockets: BeaconSockets | None = None
        self._publisher: asyncio.Task[None] | None = None
        self._measurer: asyncio.Task[None] | None = None
        self._desk: AdminDesk | None = None
        self.jobs: JobService | None = None
        self.relays: PoolRelays | None = None
        self.renewed = False
        self.interfaces: list[Interface] = []
        self.firsthand: set[str] = set()  # peers whose address a beacon or rendezvous gave
        self.seeds = Seeds(ctx.node_id)
        self.registration = Register("", (), 0, 0)
        self.peer_port = 0
        self.cp_rendezvous: ControlPlaneRendezvous | None = None

    @property
    def links(self) -> PeerLinks:
        assert self._links is not None
        return self._links

    @property
    def gossip(self) -> GossipProtocol:
        assert self._gossip is not None
        return self._gossip

    @property
    def pump(self) -> MessagePump:
        """Gossip's message pump (once started)."""
        assert self._gossip_pump is not None
        return self._gossip_pump

    def _memory_override(self) -> int | None:
        """A member's `spec.capacity.memoryBytes`, else ``MESHNET_MEMORY_OFFER`` (an admin
        has no Member object): what it offers the ring's weighting, and at most what its
        shares take and its published free memory says."""
        for obj in self.ctx.store.list("Member"):
            if isinstance(obj, Member) and obj.spec.pool.name == self.info.name:
                return obj.spec.capacity.memory_bytes or memory_offer_setting()
        return memory_offer_setting()

    def measures(self) -> tuple[list[MemberMeasure], list[LinkMeasure]]:
        """The planner's inputs as this node's gossip holds them (``MeasureSource``)."""
        if self._gossip is None or self._gossip_pump is None:
            return [], []
        now = self._gossip_pump.now()
        return plan_inputs(self.gossip.members(), self.gossip.measure_reports(now))

    def ring_converged(self) -> bool:
        return self._gossip is not None and self.gossip.ring is not None and self.gossip.converged

    async def start(self) -> None:
        from reconciler.runtime.messagepump import MessagePump

        ctx, info, spec = self.ctx, self.info, self.pool.spec
        discovery = effective_discovery(spec.discovery)
        if info.role == "admin":
            material.ensure_admin_certificate(
                ctx.home, info, ctx.identity, ctx.node.name, time.time()
            )
        self.revocations.attach(material.anchor(ctx.home, info))
        membership = material.membership(ctx.home, info, self.revocations.fingerprints())
        files = material.tls_files(ctx.home, info.name)
        self._links = PeerLinks(
            ctx.node_id, server_context(files), client_context(files), self._on_frame, self._allowed
        )
        self.relays = PoolRelays(ctx.home, self.pool.spec.relays, ctx.node_id, info.pool_id)
        self.relays.start(files, self.links, self._allowed)
        self.interfaces = choose_interfaces(discovery)
        interface = self.interfaces[0]
        bind = interface.address if interface.is_loopback else "0.0.0.0"
        port = await self.links.listen(bind, 0)
        memory = memory_bytes(self._memory_override())
        meta = NodeMeta(ctx.node.name, f"{interface.address}:{port}", memory, cores())
        addresses = tuple(f"{i.address}:{port}" for i in self.interfaces)
        self.relays.on_peers = self._on_rendezvous
        self.registration = Register(ctx.node.name, addresses, memory, cores())
        self.relays.register(self.registration)
        self.peer_port = port
        config = GossipConfig(
            pool_id=info.pool_id,
            shard_columns=spec.ring.shard_columns,
            weighting=spec.ring.weighting,
            probe_interval=PROBE_INTERVAL,
        )
        loop = asyncio.get_running_loop()
        self._gossip = GossipProtocol(
            ctx.node_id, meta, config, random.Random(), loop.time(), self.revocations.verify
        )
        self._gossip_pump = MessagePump(self.gossip, self.links, Channel.GOSSIP, self._on_gossip)
        self.jobs = JobService(
            ctx.node_id,
            send_control=ControlSender(self.links),
            tensor_transport_factory=lambda: LinksTensorSender(self.links, loop),
            model_resolver=partial(resolve_name, home=ctx.home),  # names only, from peers
            ring_view=lambda: self.gossip.ring,
            measures=self,  # the planner's inputs from gossip (``measures()`` below)
            memory_offer=self._memory_override,  # what a share may take here, at most
        )
        self.gossip.add_revocations(self.revocations.entries())
        self._gossip_pump.flush()
        if info.role == "admin":
            self._desk = AdminDesk(load_root(ctx.home, info.name), mode=spec.admission,
                                   charge=partial(charge_token, ctx.store))  # fmt: skip
            self.refresh()
        advert = Advert(ctx.node.name, interface.address, port, memory, cores())
        beacon_config = BeaconConfig(
            info.pool_id, destinations(discovery), interval=discovery.beacon_interval
        )
        self._beacon = BeaconProtocol(
            beacon_config, ctx.identity, advert, random.Random(), membership=membership,
            admin=self._desk, revoked=self.revocations.fingerprints(),
        )  # fmt: skip
        self._beacon.start(time.time())
        self._sockets = await open_beacon_sockets(
            discovery, self.interfaces, self._beacon, self._on_beacon
        )
        if info.role != "admin" and spec.control_plane:
            self.cp_rendezvous = ControlPlaneRendezvous(
                spec.control_plane, info.pool_id, files, self.registration, self._on_rendezvous
            )
            self.cp_rendezvous.start()
        self._publisher = loop.create_task(self._publish_loop(), name=f"publish-{info.name}")
        measuring = measure_at_start(
            self.gossip.set_local_measures, self._gossip_pump.flush, self._memory_override
        )
        self._measurer = loop.create_task(measuring, name=f"measure-{info.name}")
        log.info(
            "pool %s (%s): %s, beacons on %s, peer links on port %d",
            info.name, info.pool_id, info.role, ", ".join(i.name for i in self.interfaces), port,
        )  # fmt: skip

    async def stop(self) -> None:
        """Leave gracefully: tell the others, give the message a moment, close."""
        for task in (self._publisher, self._measurer):
            if task is not None:
                task.cancel()
        if self._publish_due is not None:
            self._publish_due.cancel()
        if self.jobs is not None:
            self.jobs.close()
        if self._gossip is not None and self._gossip_pump is not None:
            self.gossip.leave(asyncio.get_running_loop().time())
            self._gossip_pump.flush()
            self._gossip_pump.close()
            await asyncio.sleep(LEAVE_GRACE_SECONDS)
        if self._sockets is not None:
            self._sockets.close()
        if self._links is not None:
            await self.links.close()
        if self.relays is not None:
            await self.relays.close()
        if self.cp_rendezvous is not None:
            await self.cp_rendezvous.close()
        self._publish(final=True)

    # -- store changes ------------------------------------------------------------------

    def refresh(self) -> None:
        """Pick up tokens, approvals and revocations written by meshctl."""
        from reconciler.store_admin import approvals, tokens

        store, now = self.ctx.store, time.time()
        if self._desk is not None:
            self._desk.tokens = {t.record.token_id: t.record for t in tokens(store, self.info.name)}
            for node_id, state in approvals(store, self.info.name).items():
                if self._desk.approvals.get(node_id) != state:
                    self._answer_approval(node_id, state, now)
        new = self.revocations.reload()
        if new:
            mark_revoked(store, self.revocations.fingerprints())
        if new and self._gossip is not None:
            self.gossip.add_revocations(new)
            self.pump.flush()
        if self._beacon is not None:
            self._beacon.set_revoked(self.revocations.fingerprints())
        for node_id in self.revocations.node_ids():
            if self._links is not None and self.links.knows(node_id):
                self.links.disconnect(node_id)
        if self.info.role == "admin" and self._gossip is not None:
            self._admin_rendezvous(store)  # the control plane wrote registrations

    def _answer_approval(self, node_id: str, state: str, now: float) -> None:
        assert self._desk is not None
        if node_id in self._desk.pending and self._beacon is not None:
            answer = self._beacon.approve if state == "approved" else self._beacon.deny
            answer(node_id, now)
            if self._sockets is not None:
                self._sockets.pump.flush()
        else:
            self._desk.approvals[node_id] = state  # type: ignore[assignment]

    # -- events -------------------------------------------------------------------------

    def _allowed(self, peer: PeerIdentity) -> bool:
        return not self.revocations.blocks(peer.node_id, peer.fingerprint)

    def _on_frame(self, node_id: str, channel: Channel, payload: bytes) -> None:
        if channel == Channel.GOSSIP and self._gossip_pump is not None:
            self._gossip_pump.receive(node_id, payload)
        elif self.jobs is not None and route_frame(self.jobs, node_id, channel, payload):
            pass
        elif channel in self.extra_frames:
            self.extra_frames[channel](node_id, channel, payload)

    def _on_beacon(self, event: object) -> None:
        if isinstance(event, PeerSeen):
            self._on_peer_seen(event)
        elif isinstance(event, JoinRequested) and self._desk is not None:
            record_join(self.ctx.store, self.info, self._desk, event)
        elif isinstance(event, JoinAnswered) and event.status == "approved" and event.cert_der:
            material.save_renewed(self.ctx.home, self.info.name, event.cert_der)
            self.renewed = True  # the supervisor restarts us: TLS contexts take the new cert
            log.info("certificate renewed for pool %s", self.info.name)
        elif isinstance(event, DatagramDropped):
            log.debug("beacon from %s dropped: %s %s", event.source, event.reason, event.detail)

    def _on_peer_seen(self, event: PeerSeen) -> None:
        if event.node_id == self.ctx.node_id:
            return
        seen = self.beacon_peers.setdefault(event.node_id, {"beacons": 0})
        seen.update(
            beacons=seen["beacons"] + 1, name=event.name, source=f"{event.source[0]}",
            clockSkew=round(event.clock_skew, 3), lastBeacon=time.time(),
        )  # fmt: skip
        host = dial_host(event.host, event.source[0], self.interfaces)
        self.firsthand.add(event.node_id)
        self.links.set_address(event.node_id, host, event.port)
        meta = NodeMeta(event.name, f"{event.host}:{event.port}", event.memory_bytes, event.cores)
        self.gossip.add_seed(event.node_id, meta)
        self.pump.flush()

    def _on_rendezvous(self, entries: tuple[PeerEntry, ...]) -> None:
        """Members a rendezvous knows: seed gossip with those we have not met (no beacon
        heard from them: multicast does not get through)."""
        if self._gossip is None or self._gossip_pump is None:
            return
        picked = self.seeds.pick(
            entries, self.beacon_peers, lambda node: self.revocations.blocks(node, ""),
            self.interfaces, time.monotonic(),
        )  # fmt: skip
        for entry, address in picked:
            host, _, port = address.rpartition(":")
            self.firsthand.add(entry.node_id)
            self.links.set_address(entry.node_id, host, int(port))
            meta = NodeMeta(entry.name, address, entry.memory_bytes, entry.cores)
            self.gossip.add_seed(entry.node_id, meta)
        self._gossip_pump.flush()

    def _on_gossip(self, event: object) -> None:
        if isinstance(event, gossip_events.MemberJoined | gossip_events.MemberHinted):
            self._learn_address(event.node_id, event.meta.address)
            if isinstance(event, gossip_events.MemberHinted):
                self._hinted.add(event.node_id)
        elif isinstance(event, gossip_events.MessageDropped):
            self.gossip_drops[event.reason.split(":")[0][:60]] += 1
            log.debug("gossip from %s dropped: %s", event.from_node_id, event.reason)
        elif isinstance(event, gossip_events.MemberStateChanged):
            log.info("member %s: %s -> %s", event.node_id, event.old.name, event.new.name)
            if event.new.name in ("DEAD", "LEFT") and self.jobs is not None:
                self.jobs.member_lost(event.node_id)
        elif isinstance(event, gossip_events.MemberRevoked):
            self._on_revoked(event.node_id)
            if self.jobs is not None:
                self.jobs.member_lost(event.node_id)
        elif isinstance(event, gossip_events.RingConverged):
            self._write_topology(event.ring.to_topology_json(converged=True))
            log.info(
                "ring converged: epoch %d, %d members", event.ring.epoch, len(event.ring.members)
            )
        if isinstance(event, gossip_events.RingChanged | gossip_events.RingConverged):
            self._time_convergence(event)
        if isinstance(event, DECISIVE_EVENTS):
            self._publish_soon()

    def _publish_soon(self) -> None:
        """Publish once the current burst of machine events is handled (members and
        the ring reach the store and the controllers at once, not at the next tick)."""
        if self._publish_due is None:
            self._publish_due = asyncio.get_running_loop().call_soon(self._publish_now)

    def _publish_now(self) -> None:
        self._publish_due = None
        self._publish()

    def _time_convergence(self, event: object) -> None:
        """How long the ring took from its first change to converging (for /metrics)."""
        now = asyncio.get_running_loop().time()
        if isinstance(event, gossip_events.RingChanged) and self._changed_at is None:
            self._changed_at = now
        elif isinstance(event, gossip_events.RingConverged) and self._changed_at is not None:
            self._converge_seconds, self._changed_at = now - self._changed_at, None

    def _learn_address(self, node_id: str, address: str) -> None:
        """A gossiped address, unless a beacon or the rendezvous told us one first hand
        (a peer with several legs gossips one of them, maybe not ours)."""
        host, _, port = address.rpartition(":")
        if node_id in self.firsthand:
            return
        if node_id != self.ctx.node_id and host and port.isdigit():
            self.links.set_address(node_id, host, int(port))

    def _on_revoked(self, node_id: str) -> None:
        if node_id == self.ctx.node_id:
            log.error("this device was revoked from pool %s", self.info.name)
        else:
            log.warning("member %s revoked: dropping its links", node_id)
            self.links.disconnect(node_id)

    def _write_topology(self, topology: dict[str, Any]) -> None:
        path = self.ctx.home.ring_topology(self.info.pool_id)
        write_atomic(path, json.dumps(topology, indent=2).encode() + b"\n")

    # -- publishing ---------------------------------------------------------------------

    def live(self, what: str) -> Any:
        """Observed state as of now, for the local API: ``peers`` (rows as published)
        or ``ring`` (the ring document, None before gossip runs)."""
        if self._gossip is None:
            return [] if what == "peers" else None
        if what == "peers":
            now = asyncio.get_running_loop().time()
            return peer_rows(self.gossip, self._peer_sources(), now, self._measured)
        return ring_document(self.gossip)

    def _peer_sources(self) -> PeerSources:
        return PeerSources(self.ctx.node_id, self.links.stats, self.beacon_peers, self.seeds.met)

    async def _publish_loop(self) -> None:
        """Every few seconds: free memory for the plan, then what the store shows (one
        wake of the agent for both)."""
        while True:
            if self._gossip is not None and self._gossip_pump is not None:
                refresh_free_memory(
                    self.gossip.set_local_measures, self._gossip_pump.flush, self._memory_override
                )
            self._publish()
            await asyncio.sleep(PUBLISH_SECONDS)

    def _publish(self, final: bool = False) -> None:
        if self._gossip is None:
            return
        for node_id in [n for n in self._hinted if not self.gossip.wanted(n)]:
            self._hinted.discard(node_id)
            self.links.disconnect(node_id)
        store, name = self.ctx.store, self.info.name
        now = asyncio.get_running_loop().time()
        stats_due = final or now >= self._next_stats  # counters: every few seconds
        if stats_due:
            self._measured = measure_table(self.gossip, now)
        rows = [] if final else peer_rows(self.gossip, self._peer_sources(), now, self._measured)
        decisive = observed.decisive_peers(rows)  # last seen and counters wake nobody
        volatile, self._decisive = decisive == self._decisive, decisive
        observed.publish(store, observed.peers_key(name), rows, self._cache, volatile)
        ring = None if final else ring_document(self.gossip)
        observed.publish(store, observed.ring_key(name), ring, self._cache)
        if self._beacon is not None and self._sockets is not None:
            stats = beacon_stats(self._beacon, self._sockets, self.beacon_peers)
            stats["relays"] = self.relays.status() if self.relays is not None else []
            if self._desk is not None and self._desk.limiter is not None:
                stats["joinsRateLimited"] = dict(self._desk.limiter.limited)
            stats["gossipDrops"] = dict(self.gossip_drops)
            stats["rendezvous"] = self._rendezvous_status()
            observed.publish(store, observed.beacons_key(name), stats, self._cache, True)
        if stats_due:
            self._next_stats = now + STATS_SECONDS
            self._publish_gossip_stats(ring)
        if self.info.role == "admin" and not final:
            self._admin_rendezvous(store)

    def _publish_gossip_stats(self, ring: dict[str, Any] | None) -> None:
        pump = self.pump
        gossip = {"rounds": pump.rounds, "messagesSent": pump.sent,
                  "messagesReceived": pump.received, "epoch": ring["epoch"] if ring else 0,
                  "convergeSeconds": self._converge_seconds,
                  "measured": self_measures(self._measured.get(self.ctx.node_id, {}),
                                            self._memory_override())}  # fmt: skip
        key = observed.gossip_key(self.info.name)
        observed.publish(self.ctx.store, key, gossip, self._cache, volatile=True)

    def _admin_rendezvous(self, store: Store) -> None:
        """Hand out where we listen (through our control plane); seed gossip with the
        members that registered there."""
        mine = self_entry(self.ctx.node_id, self.registration, self.peer_port)
        key = observed.rendezvous_self_key(self.info.name)
        observed.publish(store, key, mine, self._cache, volatile=True)
        table = store.get_observed(observed.rendezvous_key(self.info.name))
        self._on_rendezvous(entries_from_json(table, time.time()))

    def _rendezvous_status(self) -> dict[str, Any]:
        cp = self.cp_rendezvous.status() if self.cp_rendezvous is not None else None
        return {"controlPlane": cp, "peers": sorted(self.seeds.met)}
