"""CertCache: a certificate costs one signature check, and what can change is re-checked."""

from __future__ import annotations

import pytest

from reconciler.certs.cache import CertCache
from reconciler.certs.errors import CertificateError
from reconciler.certs.identity import NodeIdentity
from reconciler.certs.member import MEMBER_TTL_SECONDS, sign_member_certificate
from reconciler.certs.root import PoolRoot


def test_cached_certificates_still_expire_and_get_revoked(
    root: PoolRoot, alice: NodeIdentity, now: float
) -> None:
    cache = CertCache()
    der = sign_member_certificate(root, alice.public_key, "a", "member", now)
    assert cache.verify(der, root.anchor, now).node_id == alice.node_id
    assert cache.verify(der, root.anchor, now + 5).node_id == alice.node_id
    assert cache.verifications == 1
    with pytest.raises(CertificateError) as err:
        cache.verify(der, root.anchor, now, revoked={alice.fingerprint})
    assert err.value.reason == "revoked"
    with pytest.raises(CertificateError) as err:
        cache.verify(der, root.anchor, now + MEMBER_TTL_SECONDS + 10)
    assert err.value.reason == "expired"


def test_a_forged_certificate_is_refused_from_memory(
    root: PoolRoot, other_root: PoolRoot, alice: NodeIdentity, now: float
) -> None:
    cache = CertCache(limit=2)
    forged = sign_member_certificate(other_root, alice.public_key, "a", "member", now)
    for _ in range(3):
        with pytest.raises(CertificateError) as err:
            cache.verify(forged, root.anchor, now)
        assert err.value.reason == "untrusted"
    assert cache.verifications == 1
    for i in range(5):
        with pytest.raises(CertificateError):
            cache.verify(forged + bytes([i]), root.anchor, now)
    assert len(cache._bad) == 2
