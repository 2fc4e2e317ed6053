"""A JobMachine under test: a fake clock, its outputs collected and decoded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reconciler.gossip.ring import Ring
from reconciler.inference.sampling import SamplingParams
from reconciler.jobs import machineevents as ev
from reconciler.jobs import messages as m
from reconciler.jobs.coordinator import make_offer
from reconciler.jobs.machine import JobMachine
from reconciler.jobs.results import JobRequest
from tests.unit.jobs.conftest import make_ring

RING = make_ring({"a": (0, 3000), "b": (3000, 6000), "c": (6000, 8192)})
SESSION = 77


@dataclass(frozen=True)
class Tok:
    """A token as the engine reports it (the fields the coordinator reads)."""

    token_id: int
    text: str = "x"
    finish_reason: str | None = None
    step_ms: float = 10.0
    prefill_ms: float = 40.0
    round: int = 0


def offer(ring: Ring = RING, session: int = SESSION, job: str = "job") -> m.JobOffer:
    request = JobRequest(job, "tiny", [1, 2, 3], SamplingParams(max_tokens=4), ring)
    return make_offer(request, session)


def stats(node: str, tokens: int = 3) -> m.MemberStats:
    return m.MemberStats(node, 0, 1, 5.0, 1.0, 10, 2, 4, 3.0, 100, 2.0, tokens)


class Kit:
    """One machine, a clock moved by hand, and everything it said so far."""

    def __init__(self, node: str = "a", **kw: Any) -> None:
        kw.setdefault("ready_timeout", 30.0)
        kw.setdefault("done_timeout", 5.0)
        self.machine = JobMachine(node, **kw)
        self.now = 100.0
        self.sent: list[tuple[str, m.Message, bool]] = []
        self.events: list[ev.Event] = []

    def drain(self) -> Kit:
        for send in self.machine.messages_to_send():
            self.sent.append((send.node, m.decode(send.payload), send.offer))
        while (event := self.machine.next_event()) is not None:
            self.events.append(event)
        return self

    def take(self) -> tuple[list[tuple[str, m.Message, bool]], list[ev.Event]]:
        self.drain()
        out = (self.sent, self.events)
        self.sent, self.events = [], []
        return out

    def receive(self, src: str, msg: m.Message | bytes) -> Kit:
        payload = msg if isinstance(msg, bytes) else m.encode(msg)
        self.machine.receive_message(src, payload, self.now)
        return self.drain()

    def advance(self, seconds: float) -> Kit:
        """Move the clock and fire the timer if it is due (as a driver would)."""
        self.now += seconds
        timer = self.machine.get_timer()
        if timer is not None and timer <= self.now:
            self.machine.handle_timer(self.now)
        return self.drain()

    def sent_types(self) -> list[tuple[str, str]]:
        return [(node, type(msg).__name__) for node, msg, _ in self.sent]

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]
