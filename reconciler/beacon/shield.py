"""Keeping the admin from being a reflector or a CPU sink (sans-IO: the clock comes in).

A UDP source address can be forged, so an answer sent to it may hit a victim. Two
rules keep that harmless, as QUIC does for its first packets:

- **No amplification.** A join request shorter than ``wire.MIN_JOIN_REQUEST`` bytes
  is dropped before anything is checked; joiners pad their requests to that size
  (``messages.encode_body``), so an answer (at most ``wire.MAX_DATAGRAM``) is never
  more than ``wire.AMPLIFICATION`` times the datagram that asked for it.
- **Rate limits before signature checks.** Join requests are verified at most
  ``per_source`` per second from one source address (``burst`` at once), and at
  most ``overall`` per second from all sources together; the rest are dropped
  (``rate_limited``). Sources are kept in a bounded table.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from reconciler.beacon.wire import MIN_JOIN_REQUEST


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class TokenBuckets:
    """One token bucket per key, ``rate`` tokens a second up to ``burst``; bounded."""

    def __init__(self, rate: float, burst: float, max_keys: int = 1024) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def allow(self, key: str, now: float) -> bool:
        """Take one token for ``key`` if it has one."""
        bucket = self._buckets.pop(key, None) or _Bucket(self.burst, now)
        elapsed = max(0.0, now - bucket.at)
        bucket.tokens = min(self.burst, bucket.tokens + elapsed * self.rate)
        bucket.at = now
        self._buckets[key] = bucket
        while len(self._buckets) > self.max_keys:  # the least recently seen goes
            self._buckets.popitem(last=False)
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True


class JoinShield:
    """The admin's gate in front of join-request verification."""

    def __init__(self, per_source: float = 2.0, burst: float = 10.0, overall: float = 100.0):
        self._sources = TokenBuckets(per_source, burst)
        self._overall = TokenBuckets(overall, overall, max_keys=1)
        self.refused = 0

    def admit(self, source_host: str, datagram_size: int, now: float) -> str | None:
        """None if this join request may be verified, else the drop reason."""
        if datagram_size < MIN_JOIN_REQUEST:
            return "unpadded"
        if not self._sources.allow(source_host, now) or not self._overall.allow("*", now):
            self.refused += 1
            return "rate_limited"
        return None
