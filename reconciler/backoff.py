"""The agent's one retry policy: capped exponential backoff.

``BackoffPolicy.delay(failures)`` is pure: after the n-th consecutive failure (n >= 1)
wait ``base * 2**(n - 1)``, never more than ``cap``. ``Backoff`` counts the failures of
one retry loop (dials, reconnects) and forgets them on success. The executor, the
runtime supervisor, the joiner, peer links and the relay client all use it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BackoffPolicy:
    """First wait ``base`` seconds, doubling per consecutive failure, capped at ``cap``."""

    base: float
    cap: float

    def __post_init__(self) -> None:
        if not 0.0 < self.base <= self.cap:
            raise ValueError(f"backoff needs 0 < base <= cap, got {self.base} and {self.cap}")

    def delay(self, failures: int) -> float:
        """Seconds to wait after ``failures`` consecutive failures (0 for none)."""
        if failures < 1:
            return 0.0
        return min(self.base * 2.0 ** min(failures - 1, 64), self.cap)


class Backoff:
    """The failure count of one retry loop."""

    def __init__(self, policy: BackoffPolicy) -> None:
        self.policy = policy
        self.failures = 0

    def failed(self) -> float:
        """Count a failure; the seconds to wait before the next attempt."""
        self.failures += 1
        return self.policy.delay(self.failures)

    def succeeded(self) -> None:
        """The attempt worked: the next failure waits ``base`` again."""
        self.failures = 0
