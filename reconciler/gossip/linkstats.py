"""What the plan needs, measured by gossip and published with it (sans-IO).

- **Round trip** per peer: every direct probe ack (``PING`` -> ``ACK``, not the indirect
  path) is a sample; the figure is smoothed as TCP smooths its RTT (EWMA, gain 1/8).
- **Throughput** per peer: a rare bounded bulk probe, ``BULK_PING`` with 64 KiB of
  padding, at most one per peer per minute (and only once its round trip is known),
  answered at once with a small ``BULK_ACK``. The sample is
  ``64 KiB / (bulk round trip - smoothed round trip)``: what a large frame costs beyond
  a small one, on the same TLS link jobs use. Smoothed with gain 1/4.
- **Own statement**: every ``MEASURE_INTERVAL`` (and at once to a new member) this node
  sends each member a ``MEASURES`` body: its kernel speed and free memory (set by the
  driver) and its own links' figures. A node states only its own figures; what it hears
  is kept per sender (the authenticated peer), checked by ``claims.measures_problem``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from reconciler.gossip.measurewire import BulkAck, BulkPing, LinkFigure, Measures

RTT_GAIN = 0.125  # RFC 6298's alpha
THROUGHPUT_GAIN = 0.25
BULK_BYTES = 64 * 1024
BULK_INTERVAL = 60.0  # seconds between bulk probes of one peer
BULK_TIMEOUT = 5.0  # an unanswered bulk probe (an older peer) is forgotten after this
MEASURE_INTERVAL = 5.0  # seconds between statements to each member
FASTEST_LINK = 1e10  # bytes/s: a bulk probe lost in the round trip's noise reads as this

Send = Callable[[str, Measures | BulkPing | BulkAck], None]


@dataclass(slots=True)
class LinkStat:
    """This node's smoothed figures for its link to one peer (None = not measured)."""

    rtt_s: float | None = None
    bytes_per_s: float | None = None


@dataclass(frozen=True, slots=True)
class MeasureReport:
    """A node's own statement as held here (None = not measured)."""

    speed_bytes_per_s: float | None
    free_memory: int | None
    links: dict[str, LinkStat] = field(default_factory=dict)
    at: float = 0.0  # when it was heard (or made, for this node's own)


def ewma(old: float | None, sample: float, gain: float) -> float:
    """Exponentially weighted moving average; the first sample is taken as is."""
    return sample if old is None else old + gain * (sample - old)


def report_of(m: Measures, now: float) -> MeasureReport:
    """A received (already checked) statement as held."""
    links = {
        f.peer: LinkStat(f.rtt_us / 1e6 if f.rtt_us else None, float(f.bytes_per_s) or None)
        for f in m.links
    }
    speed = float(m.speed_bytes_per_s) or None
    return MeasureReport(speed, m.free_memory or None, links, now)


class Measuring:
    """Link figures of one node, its own statement and the statements it heard."""

    def __init__(self, self_id: str, send: Send) -> None:
        self.self_id = self_id
        self._send = send
        self.links: dict[str, LinkStat] = {}
        self.heard: dict[str, MeasureReport] = {}
        self.speed_bytes_per_s: float | None = None
        self.free_memory: int | None = None
        self._stated_at: dict[str, float] = {}
        self._bulk_seq = 0
        self._bulk_out: dict[int, tuple[str, float]] = {}
        self._bulk_at: dict[str, float] = {}

    # -- local figures --------------------------------------------------------------

    def set_local(self, speed_bytes_per_s: float | None, free_memory: int | None) -> None:
        """The driver's figures; a first kernel speed is stated to everyone at once."""
        if speed_bytes_per_s is not None and self.speed_bytes_per_s is None:
            self._stated_at.clear()
        if speed_bytes_per_s is not None:
            self.speed_bytes_per_s = speed_bytes_per_s
        if free_memory is not None:
            self.free_memory = free_memory

    def on_rtt(self, peer: str, rtt_s: float) -> None:
        """A direct probe's round trip."""
        if rtt_s >= 0:
            stat = self.links.setdefault(peer, LinkStat())
            stat.rtt_s = ewma(stat.rtt_s, rtt_s, RTT_GAIN)

    def own_report(self, now: float) -> MeasureReport:
        links = {p: LinkStat(s.rtt_s, s.bytes_per_s) for p, s in self.links.items()}
        return MeasureReport(self.speed_bytes_per_s, self.free_memory, links, now)

    def statement(self) -> Measures:
        """This node's ``MEASURES`` body (figures rounded to the wire's integers)."""
        figures = tuple(
            LinkFigure(peer, _us(s.rtt_s), round(s.bytes_per_s or 0))
            for peer, s in sorted(self.links.items())
        )
        speed = round(self.speed_bytes_per_s or 0)
        return Measures(speed, self.free_memory or 0, figures)

    # -- timers -----------------------------------------------------------------

    def tick(self, now: float, peers: Iterable[str]) -> None:
        """State our figures to members that are due; send at most one bulk probe."""
        alive = set(peers)
        self.forget(alive)
        self._bulk_out = {s: o for s, o in self._bulk_out.items() if now - o[1] < BULK_TIMEOUT}
        statement = self.statement()
        if statement.speed_bytes_per_s or statement.free_memory or statement.links:
            for peer in sorted(alive):
                if self._stated_at.get(peer, float("-inf")) + MEASURE_INTERVAL <= now:
                    self._stated_at[peer] = now
                    self._send(peer, statement)
        for peer in sorted(alive, key=lambda p: self._bulk_at.get(p, float("-inf"))):
            if self._bulk_due(peer, now):
                self._bulk_seq = (self._bulk_seq + 1) & 0xFFFFFFFF
                self._bulk_out[self._bulk_seq] = (peer, now)
                self._bulk_at[peer] = now
                self._send(peer, BulkPing(self._bulk_seq, bytes(BULK_BYTES)))
                break

    def next_due(self, peers: Iterable[str]) -> float | None:
        """When ``tick`` has something to send to one of ``peers`` (None: nothing)."""
        stating = bool(round(self.speed_bytes_per_s or 0) or self.free_memory or self.links)
        due: list[float] = []  # as tick decides (without building the statement)
        for peer in peers:
            if stating:
                due.append(self._stated_at.get(peer, float("-inf")) + MEASURE_INTERVAL)  # as tick
            stat = self.links.get(peer)
            if stat is not None and stat.rtt_s is not None:
                due.append(self._bulk_at.get(peer, float("-inf")) + BULK_INTERVAL)
        return min(due, default=None)

    def _bulk_due(self, peer: str, now: float) -> bool:
        stat = self.links.get(peer)
        if stat is None or stat.rtt_s is None:
            return False
        return self._bulk_at.get(peer, float("-inf")) + BULK_INTERVAL <= now  # as next_due

    def forget(self, keep: set[str]) -> None:
        """Drop figures of nodes that are no longer members."""
        for table in (self.links, self.heard, self._stated_at, self._bulk_at):
            for node_id in [n for n in table if n not in keep]:
                del table[node_id]

    # -- received ---------------------------------------------------------------

    def on_bulk_ping(self, sender: str, seq: int) -> None:
        self._send(sender, BulkAck(seq))

    def on_bulk_ack(self, sender: str, seq: int, now: float) -> None:
        out = self._bulk_out.get(seq)
        if out is None or out[0] != sender:
            return
        del self._bulk_out[seq]
        stat = self.links.setdefault(sender, LinkStat())
        extra = now - out[1] - (stat.rtt_s or 0.0)
        sample = min(FASTEST_LINK, BULK_BYTES / extra) if extra > 0 else FASTEST_LINK
        stat.bytes_per_s = ewma(stat.bytes_per_s, sample, THROUGHPUT_GAIN)

    def on_measures(self, sender: str, m: Measures, now: float) -> None:
        """A member's own statement (checked by the caller)."""
        self.heard[sender] = report_of(m, now)


def _us(seconds: float | None) -> int:
    """Seconds as wire microseconds; a measured round trip is never 0 (unmeasured)."""
    return 0 if seconds is None else max(1, round(seconds * 1e6))
