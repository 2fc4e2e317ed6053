"""Rate limits on join requests (sans-IO: the clock is passed in).

Anyone on the LAN, and anyone who reaches the control plane, may send join requests
made with fresh keys. Every request the admin decides costs a certificate check and
a store write, so requests are limited, before they are decided, per source address,
per requesting key and for the pool as a whole, each with a token bucket. Buckets
live in bounded least-recently-used tables: a flood of fresh keys or addresses
evicts idle buckets (a full bucket is the same as none), and the global bucket holds
whatever the evictions let through.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

RATE_LIMITED = "rate limited"


@dataclass(frozen=True)
class Rate:
    """``burst`` requests at once, then one per ``1 / per_second`` seconds."""

    burst: float
    per_second: float


@dataclass
class Buckets:
    """Token buckets by key, at most ``max_keys`` of them (least recently used go)."""

    rate: Rate
    max_keys: int = 4096
    _buckets: OrderedDict[str, tuple[float, float]] = field(default_factory=OrderedDict)

    def take(self, key: str, now: float) -> bool:
        """Spend one token of ``key``'s bucket; False when it is empty."""
        level, stamp = self._buckets.pop(key, (self.rate.burst, now))
        level = min(self.rate.burst, level + max(0.0, now - stamp) * self.rate.per_second)
        allowed = level >= 1.0
        self._buckets[key] = (level - 1.0 if allowed else level, now)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return allowed

    def __len__(self) -> int:
        return len(self._buckets)


# A joiner retries after 1, 2, 4 ... 30 s: it never comes near its key's limit.
PER_SOURCE = Rate(burst=30.0, per_second=2.0)
PER_KEY = Rate(burst=10.0, per_second=0.5)
OVERALL = Rate(burst=100.0, per_second=20.0)


@dataclass
class JoinLimiter:
    """Decides whether a join request may be decided now, and counts the refusals."""

    per_source: Buckets = field(default_factory=lambda: Buckets(PER_SOURCE))
    per_key: Buckets = field(default_factory=lambda: Buckets(PER_KEY))
    overall: Buckets = field(default_factory=lambda: Buckets(OVERALL, max_keys=1))
    limited: dict[str, int] = field(default_factory=lambda: {"source": 0, "key": 0, "pool": 0})

    def allow(self, source: str, key_fingerprint: str, now: float) -> bool:
        """True if a request from ``source`` for ``key_fingerprint`` may go on."""
        for name, buckets, key in (
            ("key", self.per_key, key_fingerprint),
            ("source", self.per_source, source),
            ("pool", self.overall, ""),
        ):
            if not buckets.take(key, now):
                self.limited[name] += 1
                return False
        return True
