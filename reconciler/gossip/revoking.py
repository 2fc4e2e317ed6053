"""Revocation entries heard by gossip: verified once, remembered by digest, bounded work.

A revocation blob is opaque here; the pool's ``Verifier`` checks its signatures and
names every node it revokes. Signature checks cost CPU, so:

- a blob already accepted is never checked again (kept by its bytes);
- a rejected blob is remembered by its SHA-256 digest (the last ``MAX_REJECTED``)
  and dropped at once when it comes back;
- at most ``VERIFY_BUDGET`` unknown blobs are checked per received message; the
  others are dropped (they come again with the next push-pull).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Collection

Verifier = Callable[[bytes], str | Collection[str] | None]
"""Checks one revocation blob; returns the revoked node ID(s), or None if invalid."""

VERIFY_BUDGET = 4
MAX_REJECTED = 4096


class RevocationBook:
    """Accepted revocation blobs and the digests of rejected ones."""

    def __init__(self, verify: Verifier | None) -> None:
        self._verify = verify
        self.accepted: dict[bytes, frozenset[str]] = {}
        self._rejected: OrderedDict[bytes, None] = OrderedDict()
        self.budget = VERIFY_BUDGET
        self.verifications = 0

    def refill(self) -> None:
        """A new message arrived: it may have its own few verifications."""
        self.budget = VERIFY_BUDGET

    def check(self, entry: bytes, budgeted: bool = True) -> frozenset[str] | str | None:
        """The node IDs ``entry`` newly revokes, a reason to drop it, or None if known."""
        if entry in self.accepted:
            return None
        digest = hashlib.sha256(entry).digest()
        if digest in self._rejected:
            return "invalid revocation entry (seen before)"
        if budgeted:
            if self.budget <= 0:
                return "revocation verification budget spent"
            self.budget -= 1
        node_ids = self._verified(entry)
        if not node_ids:
            self._rejected[digest] = None
            while len(self._rejected) > MAX_REJECTED:
                self._rejected.popitem(last=False)
            return "invalid revocation entry"
        self.accepted[entry] = node_ids
        return node_ids

    def _verified(self, entry: bytes) -> frozenset[str]:
        if self._verify is None:
            return frozenset()
        self.verifications += 1
        try:
            result = self._verify(entry)
        except Exception:  # a verifier bug must not let a peer crash the machine
            return frozenset()
        if result is None:
            return frozenset()
        return frozenset([result] if isinstance(result, str) else result)
