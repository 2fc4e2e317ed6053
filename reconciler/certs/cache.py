"""Verified member certificates, remembered so a datagram does not cost a signature check.

A certificate that verified once is kept by the SHA-256 of its DER (the last
``limit``); a later sight only re-checks what can change: revocation and the
validity window. A certificate that failed for a reason that cannot change
(``malformed``, ``untrusted``, ``other_pool``, ...) is remembered as refused.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Collection
from typing import TypeVar

from reconciler.certs.errors import CertificateError
from reconciler.certs.member import MemberCertInfo, verify_member_certificate
from reconciler.certs.root import TrustAnchor

V = TypeVar("V")
_PASSING = frozenset({"revoked", "expired", "not_yet_valid"})  # may change: not cached


class CertCache:
    """Member certificates of one pool, verified at most once each."""

    def __init__(self, limit: int = 512) -> None:
        self.limit = limit
        self.verifications = 0
        self._good: OrderedDict[bytes, MemberCertInfo] = OrderedDict()
        self._bad: OrderedDict[bytes, CertificateError] = OrderedDict()

    def verify(
        self, der: bytes, anchor: TrustAnchor, now: float, revoked: Collection[str] = ()
    ) -> MemberCertInfo:
        """As ``verify_member_certificate``; CertificateError with the same reasons."""
        key = hashlib.sha256(anchor.fingerprint.encode() + b"\x00" + der).digest()
        info = self._good.get(key)
        if info is not None:
            self._good.move_to_end(key)
            return _still_valid(info, now, revoked)
        refused = self._bad.get(key)
        if refused is not None:
            raise CertificateError(refused.reason, str(refused))
        self.verifications += 1
        try:
            info = verify_member_certificate(der, anchor, now, revoked)
        except CertificateError as exc:
            if exc.reason not in _PASSING:
                _remember(self._bad, key, exc, self.limit)
            raise
        _remember(self._good, key, info, self.limit)
        return info


def _still_valid(info: MemberCertInfo, now: float, revoked: Collection[str]) -> MemberCertInfo:
    if info.fingerprint in revoked or info.cert_fingerprint in revoked:
        raise CertificateError("revoked", f"certificate of {info.node_id} is revoked")
    if now < info.not_before:
        raise CertificateError("not_yet_valid", "certificate is not valid yet")
    if now > info.not_after:
        raise CertificateError("expired", "certificate has expired")
    return info


def _remember(table: OrderedDict[bytes, V], key: bytes, value: V, limit: int) -> None:
    table[key] = value
    while len(table) > limit:
        table.popitem(last=False)
