"""Lifeguard suspicion timer: shrinks from a maximum towards a minimum timeout as
independent members confirm the suspicion."""

from __future__ import annotations

import math


def min_suspicion_timeout(mult: int, n: int, probe_interval: float) -> float:
    """``mult * max(1, log10(n)) * probe_interval`` (memberlist)."""
    return mult * max(1.0, math.log10(max(1, n))) * probe_interval


class Suspicion:
    """One member's suspicion: when it started and who confirmed it."""

    def __init__(
        self, start: float, min_timeout: float, max_timeout: float, expected: int, by: str
    ) -> None:
        self.start = start
        self._min = min_timeout
        self._max = max_timeout
        self._expected = expected
        self._confirmed: set[str] = {by}

    def confirm(self, by: str) -> bool:
        """Count an independent confirmation; True if it is new."""
        if by in self._confirmed:
            return False
        self._confirmed.add(by)
        return True

    @property
    def deadline(self) -> float:
        if self._expected <= 0:
            return self.start + self._min
        done = len(self._confirmed) - 1
        frac = math.log(done + 1) / math.log(self._expected + 1)
        timeout = max(self._min, self._max - (self._max - self._min) * frac)
        return self.start + timeout
