"""Probe scheduling: round-robin over a shuffled member list (SWIM's bounded detection
time), one outstanding probe with a direct-ack deadline and an end deadline, and the
probes this node forwards for others (PING_REQ)."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(slots=True)
class Probe:
    """The probe in flight: direct ack expected before ``indirect_at``, any ack
    (direct or through a helper) before ``end_at``."""

    target: str
    seq: int
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
