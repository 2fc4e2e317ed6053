"""``GossipProtocol``: the sans-IO SWIM/Lifeguard membership machine of one node.

aioquic-shaped API: ``receive_message(from_node_id, data, now)``,
``messages_to_send() -> [(to_node_id, bytes)]``, ``get_timer()``,
``handle_timer(now)`` and ``next_event()``. The driver delivers bytes addressed by
node id over the pool's TLS links (``from_node_id`` is the authenticated peer).
Bad input is never raised: it becomes a ``MessageDropped(reason)`` event.

Each probe interval one member (round-robin) gets a PING (a member that just probed this
node is skipped: ``probing.py``); without an ACK after
``probe_timeout`` up to ``indirect_checks`` others are sent PING_REQ; without any ACK
by the end of the interval the member is SUSPECT (see ``membership.py`` for the
suspicion timer and ``ringview.py`` for ring epochs and convergence). Broadcasts are
piggybacked on every message and on GOSSIP messages every ``gossip_interval``; a
full PUSH_PULL with one random member every ``push_pull_interval``. Round trips,
throughput and each node's own statement of its speed and memory: ``linkstats.py``.
"""

from __future__ import annotations

import random
import struct
from collections import deque
from collections.abc import Iterable

from reconciler.gossip.attribution import Attribution
from reconciler.gossip.broadcasts import BroadcastQueue, retransmit_limit
from reconciler.gossip.claims import MAX_EPOCH, broadcast_problem, bulk_problem, measures_problem
from reconciler.gossip.config import GossipConfig
from reconciler.gossip.contacts import Contacts
from reconciler.gossip.events import Event, MessageDropped
from reconciler.gossip.linkstats import LinkStat, MeasureReport, Measuring
from reconciler.gossip.membership import MemberInfo, Membership, member_info
from reconciler.gossip.messages import (
    Ack,
    Alive,
    Body,
    Broadcast,
    BulkAck,
    BulkPing,
    Dead,
    Gossip,
    GossipDecodeError,
    Leave,
    Measures,
    MemberRecord,
    Message,
    NodeMeta,
    Ping,
    PingReq,
    PushPull,
    Revoke,
    RingReport,
    Suspect,
    decode,
    encode,
)
from reconciler.gossip.probing import Prober
from reconciler.gossip.revoking import RevocationBook, Verifier
from reconciler.gossip.ring import Ring
from reconciler.gossip.ringview import RingView
from reconciler.gossip.states import MemberState

__all__ = ["GossipProtocol", "MemberInfo", "Verifier"]

CHORES_SLACK = 2.0  # probe intervals a due statement or exchange may wait for a wake


class GossipProtocol:
    """SWIM membership, revocation spreading and ring agreement for one node."""

    def __init__(
        self,
        self_id: str,
        self_meta: NodeMeta,
        config: GossipConfig,
        rng: random.Random,
        now: float,
        verify: Verifier | None = None,
    ) -> None:
        self.self_id = self_id
        self._config = config
        self._rng = rng
        self._book = RevocationBook(verify)
        self._events: deque[Event] = deque()
        self._queue = BroadcastQueue()
        self._members = Membership(self_id, self_meta, config, self._queue, self._emit, now)
        self._view = RingView(self_id, config, self._queue, self._emit)
        self._outbox: list[tuple[str, Body, tuple[Broadcast, ...]]] = []
        self._contacts = Contacts(config, self._members, self._send, self._emit)
        hint = self._contacts.hint
        self._claims = Attribution(self._members, config.max_members, hint, self._drop)
        self._measuring = Measuring(self_id, self._send)
        self._prober = Prober(self._members, config, rng, self._send, self._measuring.on_rtt)
        self._last_catch_up = float("-inf")
        self._last_live_push_pull = float("-inf")
        self._next_probe = now + rng.uniform(0, config.probe_interval)
        self._next_gossip = now + rng.uniform(0, config.gossip_interval)
        self._next_push_pull = now + rng.uniform(0, config.push_pull_interval)
        self._after_change()

    # -- public API ---------------------------------------------------------

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def add_seed(self, node_id: str, meta: NodeMeta) -> None:
        """A peer learnt out of band (beacon): join it with a push-pull."""
        if node_id == self.self_id or node_id in self._members.revoked:
            return
        member = self._members.members.get(node_id)
        if member is not None and member.state is MemberState.ALIVE:
            return
        self._contacts.seeds[node_id] = meta
        self._send(node_id, self._push_pull(is_reply=False))

    def leave(self, now: float) -> None:
        """Graceful leave: tell every member at once, then go quiet."""
        if self._members.leaving:
            return
        targets = self._members.others()
        self._members.leave()
        local = self._members.local
        for node_id in targets:
            self._send(node_id, Gossip(), (Leave(self.self_id, local.incarnation),))
        self._prober.probe = None
        self._after_change()

    def add_revocations(self, entries: Iterable[bytes]) -> None:
        """Revocation entries from the pool admin; spread and applied if verified."""
        for entry in entries:
            self._accept_revocation(entry, self.self_id, budgeted=False)

    @property
    def ring(self) -> Ring | None:
        return self._view.ring

    @property
    def converged(self) -> bool:
        return self._view.converged

    @property
    def incarnation(self) -> int:
        return self._members.local.incarnation

    def wanted(self, node_id: str) -> bool:
        """True while ``node_id`` is a member, a seed or a hint: a peer worth a link."""
        wanted = node_id in self._members.members or self._contacts.wanted(node_id)
        return node_id != self.self_id and wanted

    def members(self) -> list[MemberInfo]:
        """Snapshot of every known member, self included, sorted by node id."""
        table = self._members.members
        return [member_info(table[node_id]) for node_id in sorted(table)]

    def set_local_measures(
        self, speed_bytes_per_s: float | None = None, free_memory: int | None = None
    ) -> None:
        """This node's kernel speed (self-test) and free memory, to state to the pool."""
        self._measuring.set_local(speed_bytes_per_s, free_memory)

    def link_stats(self) -> dict[str, LinkStat]:
        """This node's smoothed round trip and throughput per peer (a copy)."""
        return {p: LinkStat(s.rtt_s, s.bytes_per_s) for p, s in self._measuring.links.items()}

    def measure_reports(self, now: float) -> dict[str, MeasureReport]:
        """Every member's own statement held here, this node's included."""
        reports = dict(self._measuring.heard)
        reports[self.self_id] = self._measuring.own_report(now)
        return reports

    def receive_message(self, from_node_id: str, data: bytes, now: float) -> None:
        if self._members.leaving:
            return self._drop(from_node_id, "node has left")
        if from_node_id in self._members.revoked:
            return self._drop(from_node_id, "revoked sender")
        try:
            msg = decode(data)
        except GossipDecodeError as exc:
            return self._drop(from_node_id, f"decode error: {exc}")
        if msg.ring_epoch > MAX_EPOCH:
            return self._drop(from_node_id, "ring epoch near the 64-bit limit")
        self._members.refuted = False
        self._contacts.refused = False
        self._book.refill()
        try:
            self._receive(msg, from_node_id, now)
        except (ValueError, KeyError, OverflowError, struct.error) as exc:  # a bug, not a crash
            self._drop(from_node_id, f"message not applied: {type(exc).__name__}: {exc}")
        self._chores(now)
        self._after_change()

    def _receive(self, msg: Message, from_node_id: str, now: float) -> None:
        sender = self._members.members.get(from_node_id)
        if sender is not None:
            sender.last_seen = now
        self._note_report(from_node_id, msg.ring_epoch, msg.ring_hash)
        self._catch_up(from_node_id, msg.ring_epoch, msg.ring_hash, now)
        for b in msg.broadcasts:
            self._on_broadcast(b, from_node_id, now)
        self._on_body(msg.body, from_node_id, now)

    def messages_to_send(self) -> list[tuple[str, bytes]]:
        if not self._outbox:
            return []
        limit = retransmit_limit(self._config.retransmit_mult, len(self._members.in_ring()))
        out: list[tuple[str, bytes]] = []
        for to, body, extra in self._outbox:
            taken: tuple[Broadcast, ...] = ()
            if not isinstance(body, Measures | BulkPing | BulkAck):  # older peers drop these
                taken = self._queue.take(self._config.piggyback_bytes, limit)
            broadcasts = extra + tuple(b for b in taken if b not in extra)
            if isinstance(body, Gossip) and not broadcasts:
                continue
            msg = Message(body, self._view.epoch, self._view.hash, broadcasts)
            try:
                out.append((to, encode(msg)))
            except (ValueError, OverflowError, struct.error) as exc:
                self._drop(self.self_id, f"message to {to} not encodable: {exc}")
        self._outbox.clear()
        return out

    def get_timer(self) -> float | None:
        if self._members.leaving:
            return None
        others = self._members.others()
        slack = CHORES_SLACK * self._config.probe_interval  # sent on another wake anyway
        push_pull = self._push_pull_ready_at()
        deadlines = [self._probe_due(), push_pull + slack if self._settled() else push_pull]
        if len(self._queue) and others:  # else no round (an idle pool sleeps)
            deadlines.append(self._next_gossip)
        measures = self._measuring.next_due(others)
        if measures is not None:
            deadlines.append(measures + slack)
        deadlines.extend(self._prober.deadlines())
        suspicion = self._members.next_suspicion_deadline()
        if suspicion is not None:
            deadlines.append(suspicion)
        return min(deadlines)

    def handle_timer(self, now: float) -> None:
        if self._members.leaving:
            return
        self._prober.check(now)
        if now >= self._probe_due():
            self._next_probe = self._advance(self._next_probe, self._config.probe_interval, now)
            self._prober.start(now)
            self._contacts.tick(now)
        self._members.expire_suspicions(now)
        if now >= self._next_gossip:
            self._next_gossip = self._advance(self._next_gossip, self._config.gossip_interval, now)
            self._gossip()
        self._chores(now)
        self._prober.expire(now)
        self._after_change()

    # -- internals ----------------------------------------------------------

    def _emit(self, event: Event) -> None:
        self._events.append(event)

    def _drop(self, from_node_id: str, reason: str) -> None:
        self._emit(MessageDropped(from_node_id, reason))

    def _send(self, to: str, body: Body, extra: tuple[Broadcast, ...] = ()) -> None:
        self._outbox.append((to, body, extra))

    def _chores(self, now: float) -> None:
        """Measures statements and, in a settled pool, the slow full-state exchange ride
        on a wake the node has anyway (a probe round, a received message); their own
        deadlines are only late fallbacks."""
        others = self._members.others()
        due = self._measuring.next_due(others)
        if due is not None and now >= due:
            self._measuring.tick(now, others)
        if now >= self._push_pull_ready_at():
            interval = self._config.push_pull_interval
            self._next_push_pull = self._advance(self._next_push_pull, interval, now)
            self._periodic_push_pull(now)

    def _probe_due(self) -> float:
        """The probe round's deadline: on schedule while hints wait for an answer, else
        later while every member is quiet (it probes us: ``probing.py``)."""
        if self._contacts.hints.entries:
            return self._next_probe
        return self._prober.next_start(self._next_probe)

    @staticmethod
    def _advance(deadline: float, interval: float, now: float) -> float:
        deadline += interval
        return deadline if deadline > now else now + interval

    def _after_change(self) -> None:
        if self._members.changed:
            self._members.changed = False
            self._view.refresh(self._members.ring_members())
            self._contacts.forget(self._members.others())
        self._view.check_converged()

    def _note_report(self, node_id: str, epoch: int, ring_hash: str) -> None:
        """Record a member's ring report and pass it on if it is news."""
        if node_id not in self._members.members or epoch > MAX_EPOCH:
            return
        if self._view.note(node_id, epoch, ring_hash):
            self._queue.push(RingReport(node_id, epoch, ring_hash))

    def _catch_up(self, sender: str, epoch: int, ring_hash: str, now: float) -> None:
        """A peer with a newer epoch but another ring knows something we missed:
        exchange full state with it (at most once per probe interval)."""
        if not ring_hash or ring_hash == self._view.hash or epoch <= self._view.epoch:
            return
        if now - self._last_catch_up < self._config.probe_interval:
            return
        self._last_catch_up = now
        self._send(sender, self._push_pull(is_reply=False))

    def _push_pull(self, is_reply: bool) -> PushPull:
        records = tuple(
            MemberRecord(m.node_id, m.meta, m.state, m.incarnation, *self._view.report_of(n))
            for n, m in self._members.members.items()
        )
        return PushPull(is_reply, records, tuple(self._book.accepted))

    def _on_broadcast(self, b: Broadcast, sender: str, now: float) -> None:
        problem = broadcast_problem(b)
        if problem is not None:
            return self._drop(sender, problem)
        match b:
            case Alive() | Suspect() | Dead() | Leave():
                self._claims.claim(b, sender, now)
            case RingReport(node_id, epoch, ring_hash):
                self._note_report(node_id, epoch, ring_hash)
            case Revoke(entry):
                self._accept_revocation(entry, sender)

    def _on_body(self, body: Body, sender: str, now: float) -> None:
        match body:
            case Ping(seq, target):
                if target != self.self_id:
                    return self._drop(sender, "ping for another node")
                if sender in self._members.members:
                    self._prober.heard_probe(sender, now)
                self._send(sender, Ack(seq))
            case PingReq(seq, target) if target == self.self_id:
                self._send(sender, Ack(seq))
            case PingReq(seq, target) if target not in self._members.revoked:
                self._prober.forward(sender, seq, target, now)
            case Ack(seq):
                self._prober.on_ack(seq, now)
            case PushPull(is_reply, records, revocations):
                for entry in revocations:
                    self._accept_revocation(entry, sender)
                self._claims.records(records, sender, now)
                for r in records:
                    self._note_report(r.node_id, r.ring_epoch, r.ring_hash)
                if not is_reply:
                    self._send(sender, self._push_pull(is_reply=True))
            case Measures() | BulkPing() | BulkAck():
                self._on_measure_body(body, sender, now)

    def _on_measure_body(
        self, body: Measures | BulkPing | BulkAck, sender: str, now: float
    ) -> None:
        if sender not in self._members.others():
            return self._drop(sender, "measurement from a non-member")
        match body:
            case Measures():
                problem = measures_problem(body, sender)
                if problem is not None:
                    return self._drop(sender, problem)
                self._measuring.on_measures(sender, body, now)
            case BulkPing(seq):
                problem = bulk_problem(body)
                if problem is not None:
                    return self._drop(sender, problem)
                self._measuring.on_bulk_ping(sender, seq)
            case BulkAck(seq):
                self._measuring.on_bulk_ack(sender, seq, now)

    def _gossip(self) -> None:
        if not len(self._queue):
            return
        peers = self._members.others()
        for node_id in self._rng.sample(peers, min(self._config.gossip_nodes, len(peers))):
            self._send(node_id, Gossip())

    def _lost(self) -> list[str]:
        """Seeds and DEAD members: retried every push-pull interval."""
        return sorted(set(self._contacts.seeds) | set(self._members.others([MemberState.DEAD])))

    def _settled(self) -> bool:
        """A converged ring and nobody to retry: live exchanges at the slower pace."""
        return self._view.converged and not self._lost()

    def _push_pull_ready_at(self) -> float:
        if not self._settled():
            return self._next_push_pull
        slower = self._last_live_push_pull + self._config.converged_push_pull_interval
        return max(self._next_push_pull, slower)

    def _periodic_push_pull(self, now: float) -> None:
        peers = self._members.others()
        slower = self._last_live_push_pull + self._config.converged_push_pull_interval
        if peers and (not self._settled() or now >= slower):
            self._last_live_push_pull = now
            self._send(self._rng.choice(peers), self._push_pull(is_reply=False))
        lost = self._lost()
        if lost:
            self._send(self._rng.choice(lost), self._push_pull(is_reply=False))

    def _accept_revocation(self, entry: bytes, sender: str, budgeted: bool = True) -> None:
        outcome = self._book.check(entry, budgeted)
        if outcome is None:
            return
        if isinstance(outcome, str):
            return self._drop(sender, outcome)
        self._queue.push(Revoke(entry))
        for node_id in sorted(outcome):
            self._contacts.forget([node_id])
            self._members.revoke(node_id)
