"""The pool's revocation list: fingerprints signed off by the pool root.

Each entry names a fingerprint (of a member's public key or of a certificate), when
and why it was revoked, and carries an Ed25519 signature by the pool root over::

    b"meshnet-revocation-v1\\x00" || pool_id || 0x00 || fingerprint || 0x00
    || revoked_at (u64 ms) || reason

so a member cannot forge revocations and anyone pinning the root can check them.
Lists only grow: ``merge`` adds every valid entry the other side knows (a grow-only
set, so gossip converges in any order).

Encoding (``encode``/``decode``)::

    b"MNRL" u8 version=1  text pool_id  u16 count
    count × ( text fingerprint  u64 revoked_at_ms  text reason  blob signature[64] )

where ``text``/``blob`` are u16-length-prefixed (reconciler/codec.py). Entries are sorted by
fingerprint, so equal lists encode to equal bytes. A list of more than
``MAX_ENTRIES`` entries is refused before any signature is checked.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from reconciler.certs.errors import RevocationError
from reconciler.certs.identity import SIGNATURE_LEN, verify_signature
from reconciler.certs.root import PoolRoot, TrustAnchor
from reconciler.codec import GARBAGE, DecodeError, Reader, Writer

DOMAIN = b"meshnet-revocation-v1\x00"
MAGIC = b"MNRL"
VERSION = 1
MAX_ENTRIES = 1024
"""Entries per encoded list: a bigger one is refused before any signature is checked."""


@dataclass(frozen=True)
class RevocationEntry:
    """One signed revocation."""

    fingerprint: str
    revoked_at_ms: int
    reason: str
    signature: bytes

    @property
    def revoked_at(self) -> float:
        return self.revoked_at_ms / 1000

    def signed_bytes(self, pool_id: str) -> bytes:
        return _signed_bytes(pool_id, self.fingerprint, self.revoked_at_ms, self.reason)

    def verify(self, anchor: TrustAnchor) -> bool:
        message = self.signed_bytes(anchor.pool_id)
        return verify_signature(anchor.public_key, message, self.signature)


def _signed_bytes(pool_id: str, fp: str, revoked_at_ms: int, reason: str) -> bytes:
    millis = Writer().u64(revoked_at_ms).getvalue()
    return DOMAIN + pool_id.encode() + b"\x00" + fp.encode() + b"\x00" + millis + reason.encode()


def revoke(root: PoolRoot, fp: str, now: float, reason: str = "") -> RevocationEntry:
    """A new entry revoking ``fp``, signed by the pool root (time kept in milliseconds)."""
    millis = int(now * 1000)
    signature = root.identity.sign(_signed_bytes(root.pool_id, fp, millis, reason))
    return RevocationEntry(fp, millis, reason, signature)


class RevocationList:
    """A grow-only set of root-signed revocation entries for one pool."""

    def __init__(self, anchor: TrustAnchor, entries: Iterable[RevocationEntry] = ()) -> None:
        self.anchor = anchor
        self._entries: dict[str, RevocationEntry] = {}
        for entry in entries:
            self.add(entry)

    def add(self, entry: RevocationEntry) -> bool:
        """Add a verified entry; True if new. RevocationError if not signed by the root."""
        if not entry.verify(self.anchor):
            raise RevocationError("bad_signature", f"revocation of {entry.fingerprint} is forged")
        if entry.fingerprint in self._entries:
            return False
        self._entries[entry.fingerprint] = entry
        return True

    def merge(self, other: RevocationList) -> set[str]:
        """Add every entry of ``other`` (same pool); return the newly revoked fingerprints."""
        if other.anchor.fingerprint != self.anchor.fingerprint:
            raise RevocationError("other_pool", "cannot merge lists of different pools")
        return {e.fingerprint for e in other if self.add(e)}

    def __contains__(self, fp: object) -> bool:
        return fp in self._entries

    def __iter__(self) -> Iterator[RevocationEntry]:
        return iter(sorted(self._entries.values(), key=lambda e: e.fingerprint))

    def __len__(self) -> int:
        return len(self._entries)

    def fingerprints(self) -> frozenset[str]:
        return frozenset(self._entries)

    def encode(self) -> bytes:
        out = Writer().raw(MAGIC).u8(VERSION).text16(self.anchor.pool_id).u16(len(self))
        for e in self:
            out.text16(e.fingerprint).u64(e.revoked_at_ms).text16(e.reason).blob16(e.signature)
        return out.getvalue()

    @classmethod
    def decode(cls, data: bytes, anchor: TrustAnchor) -> RevocationList:
        """Parse and verify every entry; RevocationError if malformed, forged or other pool."""
        try:
            entries = _decode_entries(data, anchor.pool_id)
        except DecodeError as exc:
            raise RevocationError(exc.reason, f"bad revocation list: {exc}") from exc
        return cls(anchor, entries)


def _decode_entries(data: bytes, pool_id: str) -> list[RevocationEntry]:
    reader = Reader(data)
    if reader.fixed(len(MAGIC)) != MAGIC or reader.u8() != VERSION:
        raise DecodeError(GARBAGE, "not a version-1 revocation list")
    if reader.text16() != pool_id:
        raise DecodeError("other_pool", "revocation list of another pool")
    count = reader.u16()
    if count > MAX_ENTRIES:
        raise DecodeError("too_many", f"{count} entries (at most {MAX_ENTRIES})")
    entries = []
    for _ in range(count):
        fp, millis, reason = reader.text16(), reader.u64(), reader.text16()
        entries.append(RevocationEntry(fp, millis, reason, reader.blob16(SIGNATURE_LEN)))
    reader.end()
    return entries
