"""Member certificates: signing, verification reasons, renewal."""

from __future__ import annotations

import pytest

from reconciler.certs.errors import CertificateError
from reconciler.certs.identity import NodeIdentity
from reconciler.certs.member import (
    MEMBER_TTL_SECONDS,
    cert_fingerprint,
    needs_renewal,
    node_id_from_peer_cert,
    sign_member_certificate,
    verify_member_certificate,
)
from reconciler.certs.root import PoolRoot
from reconciler.certs.x509util import der_to_pem


def _reason(call: object, *args: object) -> str:
    with pytest.raises(CertificateError) as err:
        call(*args)  # type: ignore[operator]
    return err.value.reason


def test_certs_member_cert_names_node_device_role(
    root: PoolRoot, alice: NodeIdentity, now: float
) -> None:
    der = sign_member_certificate(root, alice.public_key, "alice-laptop", "admin", now)
    info = verify_member_certificate(der, root.anchor, now + 60)
    assert info.node_id == alice.node_id
    assert info.device_name == "alice-laptop"
    assert info.role == "admin"
    assert info.pool_id == root.pool_id
    assert info.public_key == alice.public_key
    assert info.fingerprint == alice.fingerprint
    assert info.cert_fingerprint == cert_fingerprint(der)
    assert info.not_after - info.not_before == MEMBER_TTL_SECONDS
    assert node_id_from_peer_cert(der) == alice.node_id
    assert b"BEGIN CERTIFICATE" in der_to_pem(der)
    assert len(der) < 600


def test_certs_member_cert_rejections(
    root: PoolRoot, other_root: PoolRoot, alice: NodeIdentity, now: float
) -> None:
    der = sign_member_certificate(root, alice.public_key, "alice", "member", now)
    foreign = sign_member_certificate(other_root, alice.public_key, "alice", "member", now)
    verify = verify_member_certificate
    assert _reason(verify, foreign, root.anchor, now) == "untrusted"
    assert _reason(verify, der, root.anchor, now + MEMBER_TTL_SECONDS + 1) == "expired"
    assert _reason(verify, der, root.anchor, now - 3600) == "not_yet_valid"
    assert _reason(verify, der, root.anchor, now, {alice.fingerprint}) == "revoked"
    assert _reason(verify, der, root.anchor, now, {cert_fingerprint(der)}) == "revoked"
    assert _reason(verify, der[:-5], root.anchor, now) == "malformed"
    tampered = bytearray(der)
    tampered[len(der) // 2] ^= 0x01
    assert _reason(verify, bytes(tampered), root.anchor, now) in {"untrusted", "malformed"}


def test_certs_revoked_key_cannot_be_recertified(
    root: PoolRoot, alice: NodeIdentity, now: float
) -> None:
    with pytest.raises(CertificateError) as err:
        sign_member_certificate(
            root, alice.public_key, "a", "member", now, revoked={alice.fingerprint}
        )
    assert err.value.reason == "revoked"


def test_certs_sign_refuses_bad_inputs(root: PoolRoot, alice: NodeIdentity, now: float) -> None:
    sign = sign_member_certificate
    assert _reason(sign, root, b"x" * 31, "a", "member", now) == "wrong_key_type"
    assert _reason(sign, root, alice.public_key, "a", "boss", now) == "bad_role"
    assert _reason(sign, root, alice.public_key, "x" * 65, "member", now) == "bad_name"
    assert _reason(sign, root, alice.public_key, "", "member", now) == "bad_name"


def test_certs_needs_renewal_in_last_third(root: PoolRoot, alice: NodeIdentity, now: float) -> None:
    der = sign_member_certificate(root, alice.public_key, "alice", "member", now)
    info = verify_member_certificate(der, root.anchor, now)
    assert not needs_renewal(info, now)
    assert not needs_renewal(info, info.not_after - 11 * 86400)
    assert needs_renewal(info, info.not_after - 9 * 86400)


def test_a_certificate_with_an_invalid_version_is_malformed(
    root: PoolRoot, alice: NodeIdentity, now: float
) -> None:
    """Found by bench/fuzz.py: a flipped bit in the version field raised
    cryptography's InvalidVersion (not a ValueError) out of the beacon machine."""
    from reconciler.certs.member import sign_member_certificate, verify_member_certificate

    der = bytearray(sign_member_certificate(root, alice.public_key, "a", "member", now))
    at = der.index(bytes([0xA0, 0x03, 0x02, 0x01, 0x02]))  # [0] EXPLICIT INTEGER 2 (v3)
    der[at + 4] = 34
    with pytest.raises(CertificateError) as err:
        verify_member_certificate(bytes(der), root.anchor, now)
    assert err.value.reason == "malformed"
