"""Per-sender sequence numbers: a sliding replay window (as in IPsec / DTLS).

For each sender key the guard remembers the highest sequence number accepted and a
bitmap of the ``window`` numbers below it. A number already seen is a ``replay``; a
number older than the window is ``stale_seq``. Only verified datagrams are
committed.

The table is bounded (``max_senders``) without ever forgetting a sender whose old
beacons could still pass the timestamp check: each entry keeps the latest timestamp
its sender signed, and is evictable only once that timestamp is more than
``horizon`` (the beacon's ``max_skew``) in the past, when every beacon it covers is
refused as expired anyway. While the table is full of live entries, new senders are
refused (``replay_table_full``, counted) and known senders go on as before: a flood
of fresh keys can delay newcomers, never reopen the replay window.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class _Entry:
    top: int
    bits: int
    latest: float  # the newest timestamp accepted from this sender


class ReplayGuard:
    """Tracks accepted sequence numbers per sender."""

    def __init__(self, window: int = 64, max_senders: int = 4096, horizon: float = 120.0) -> None:
        self.window = window
        self.max_senders = max_senders
        self.horizon = horizon
        self.refused = 0
        self._state: dict[str, _Entry] = {}
        self._oldest = float("inf")  # lower bound of the entries' ``latest``

    def __len__(self) -> int:
        return len(self._state)

    def check(self, sender: str, seq: int, now: float) -> str | None:
        """None if ``seq`` is acceptable, else ``replay``, ``stale_seq`` or
        ``replay_table_full`` (a new sender while no entry can be let go)."""
        entry = self._state.get(sender)
        if entry is None:
            if len(self._state) >= self.max_senders and not self._evict(now):
                self.refused += 1
                return "replay_table_full"
            return None
        if seq > entry.top:
            return None
        offset = entry.top - seq
        if offset >= self.window:
            return "stale_seq"
        return "replay" if entry.bits >> offset & 1 else None

    def commit(self, sender: str, seq: int, timestamp: float) -> None:
        """Record ``seq`` (signed at ``timestamp``) as accepted, after ``check``."""
        entry = self._state.get(sender)
        if entry is None:
            entry = self._state[sender] = _Entry(seq, 0, timestamp)
        if seq > entry.top:
            shift = seq - entry.top
            entry.bits = (entry.bits << shift | 1) if shift < self.window else 1
            entry.top = seq
        else:
            entry.bits |= 1 << (entry.top - seq)
        entry.bits &= (1 << self.window) - 1
        entry.latest = max(entry.latest, timestamp)
        self._oldest = min(self._oldest, entry.latest)

    def _evict(self, now: float) -> bool:
        """Forget every sender whose beacons have all expired; True if room was made."""
        cutoff = now - self.horizon
        if self._oldest >= cutoff:
            return False
        self._state = {k: e for k, e in self._state.items() if e.latest >= cutoff}
        self._oldest = min((e.latest for e in self._state.values()), default=float("inf"))
        return len(self._state) < self.max_senders
