"""Per-sender sequence numbers: a sliding replay window (as in IPsec / DTLS).

For each sender key the guard remembers the highest sequence number accepted and a
bitmap of the ``window`` numbers below it. A number already seen is a ``replay``; a
number older than the window is ``stale_seq``. Only verified datagrams are
committed. At most ``max_senders`` senders are remembered (least recently seen
evicted); the timestamp bound limits what an evicted sender's old beacons can do.
"""

from __future__ import annotations

from collections import OrderedDict


class ReplayGuard:
    """Tracks accepted sequence numbers per sender."""

    def __init__(self, window: int = 64, max_senders: int = 4096) -> None:
        self.window = window
        self.max_senders = max_senders
        self._state: OrderedDict[str, tuple[int, int]] = OrderedDict()  # key -> (top, bits)

    def check(self, sender: str, seq: int) -> str | None:
        """None if ``seq`` is acceptable, else ``"replay"`` or ``"stale_seq"``."""
        state = self._state.get(sender)
        if state is None:
            return None
        top, bits = state
        if seq > top:
            return None
        offset = top - seq
        if offset >= self.window:
            return "stale_seq"
        return "replay" if bits >> offset & 1 else None

    def commit(self, sender: str, seq: int) -> None:
        """Record ``seq`` as accepted (call only after ``check`` returned None)."""
        top, bits = self._state.pop(sender, (seq, 0))
        if seq > top:
            shift = seq - top
            bits = (bits << shift | 1) if shift < self.window else 1
            top = seq
        else:
            bits |= 1 << (top - seq)
        self._state[sender] = (top, bits & ((1 << self.window) - 1))
        while len(self._state) > self.max_senders:
            self._state.popitem(last=False)
