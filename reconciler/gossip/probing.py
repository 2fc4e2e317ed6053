"""Probe scheduling: round-robin over a shuffled member list (SWIM's bounded detection
time), one outstanding probe with a direct-ack deadline and an end deadline, and the
probes this node forwards for others (PING_REQ).

A member that probed this node within ``QUIET_PROBES`` probe intervals is alive and its
link to us works: it is not probed back (an idle pair exchanges one PING and ACK per
interval, not two), except once every ``RTT_REFRESH`` seconds for a round-trip sample.
If it stops probing, it is probed again ``QUIET_PROBES`` intervals after its last
probe, so its crash is found at most a quarter interval later than by an own probe."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from reconciler.gossip.config import GossipConfig
from reconciler.gossip.linkstats import MEASURE_INTERVAL
from reconciler.gossip.membership import Membership
from reconciler.gossip.messages import Ack, Body, Ping, PingReq
from reconciler.gossip.states import MemberState

QUIET_PROBES = 1.25  # intervals after a member's probe of us before we probe it
RTT_REFRESH = MEASURE_INTERVAL  # a quiet member is still probed this often (round trip)

Send = Callable[[str, Body], None]
OnRtt = Callable[[str, float], None]


@dataclass(slots=True)
class Probe:
    """The probe in flight: direct ack expected before ``indirect_at``, any ack
    (direct or through a helper) before ``end_at``."""

    target: str
    seq: int
    sent_at: float
    indirect_at: float
    end_at: float
    indirect_sent: bool = False


@dataclass(frozen=True, slots=True)
class Forward:
    """A ping we sent on behalf of ``requester`` (whose probe seq is ``seq``)."""

    requester: str
    seq: int
    expires: float


class ProbeRound:
    """Chooses probe targets: each member once per round, rounds reshuffled."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._order: list[str] = []
        self._index = 0

    def next_target(self, candidates: list[str]) -> str | None:
        wanted = set(candidates)
        for _ in range(2):
            while self._index < len(self._order):
                node_id = self._order[self._index]
                self._index += 1
                if node_id in wanted:
                    return node_id
            self._order = sorted(wanted)
            self._rng.shuffle(self._order)
            self._index = 0
        return None


class Prober:
    """SWIM failure detection of one node: its probe in flight and forwarded pings."""

    def __init__(
        self,
        members: Membership,
        config: GossipConfig,
        rng: random.Random,
        send: Send,
        on_rtt: OnRtt | None = None,
    ) -> None:
        self._members = members
        self._config = config
        self._rng = rng
        self._send = send
        self._on_rtt = on_rtt
        self._round = ProbeRound(rng)
        self.probe: Probe | None = None
        self._forwards: dict[int, Forward] = {}
        self._seq = 0
        self._probed_by: dict[str, float] = {}  # when each member last probed us
        self._acked_at: dict[str, float] = {}  # when each member last acked our probe

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        return self._seq

    def deadlines(self) -> list[float]:
        out = [f.expires for f in self._forwards.values()]
        if self.probe is not None:
            out.append(self.probe.end_at)
            if not self.probe.indirect_sent:
                out.append(self.probe.indirect_at)
        return out

    def heard_probe(self, sender: str, now: float) -> None:
        """``sender`` probed this node directly (a PING for us)."""
        self._probed_by[sender] = now

    def quiet_until(self, node_id: str) -> float:
        """Until when ``node_id`` needs no probe from us (-inf: it needs one now)."""
        probed = self._probed_by.get(node_id)
        acked = self._acked_at.get(node_id)
        if probed is None or acked is None:
            return float("-inf")
        quiet = probed + QUIET_PROBES * self._config.probe_interval
        return min(quiet, acked + RTT_REFRESH)

    def next_start(self, scheduled: float) -> float:
        """When the next probe is due: the schedule, later while every member is quiet."""
        others = self._members.others()
        if not others:
            return scheduled
        return max(scheduled, min(self.quiet_until(n) for n in others))

    def expire(self, now: float) -> None:
        self._forwards = {s: f for s, f in self._forwards.items() if f.expires > now}

    def forward(self, requester: str, seq: int, target: str, now: float) -> None:
        """PING_REQ: ping ``target`` for ``requester`` and pass its ack back."""
        own = self._next_seq()
        self._forwards[own] = Forward(requester, seq, now + self._config.probe_interval)
        self._send(target, Ping(own, target))

    def on_ack(self, seq: int, now: float) -> None:
        probe = self.probe
        if probe is not None and probe.seq == seq:
            target = self._members.members.get(probe.target)
            if target is not None:
                target.last_seen = now
            if not probe.indirect_sent:  # a direct ack
                self._acked_at[probe.target] = now
                if self._on_rtt is not None:
                    self._on_rtt(probe.target, now - probe.sent_at)
            self.probe = None
            return
        forward = self._forwards.pop(seq, None)
        if forward is not None:
            self._send(forward.requester, Ack(forward.seq))

    def check(self, now: float) -> None:
        probe = self.probe
        if probe is None:
            return
        if now >= probe.end_at:
            self.probe = None
            self._members.suspect_local(probe.target, now)
        elif now >= probe.indirect_at and not probe.indirect_sent:
            probe.indirect_sent = True
            helpers = [n for n in self._members.others([MemberState.ALIVE]) if n != probe.target]
            count = min(self._config.indirect_checks, len(helpers))
            for helper in self._rng.sample(helpers, count):
                self._send(helper, PingReq(probe.seq, probe.target))

    def start(self, now: float) -> None:
        others = self._members.others()
        members = set(others)
        for table in (self._probed_by, self._acked_at):
            for node_id in [n for n in table if n not in members]:
                del table[node_id]
        target = self._round.next_target([n for n in others if self.quiet_until(n) <= now])
        if target is None:
            return
        seq = self._next_seq()
        cfg = self._config
        self.probe = Probe(target, seq, now, now + cfg.probe_timeout, now + cfg.probe_interval)
        self._send(target, Ping(seq, target))
