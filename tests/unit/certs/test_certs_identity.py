"""Node identity, fingerprints, node IDs, pool root and trust anchor."""

from __future__ import annotations

import hashlib
import re

import pytest

from reconciler.certs.errors import CertificateError
from reconciler.certs.identity import NodeIdentity, fingerprint, node_id_for, verify_signature
from reconciler.certs.root import PoolRoot, TrustAnchor, create_pool_root, pool_id_for


def test_certs_fingerprint_and_node_id_are_derived_from_the_raw_key(alice: NodeIdentity) -> None:
    pub = alice.public_key
    assert len(pub) == 32
    assert fingerprint(pub) == "sha256:" + hashlib.sha256(pub).hexdigest()
    assert re.fullmatch(r"node-[0-9a-f]{16}", node_id_for(pub))
    assert alice.node_id == node_id_for(pub) and alice.fingerprint == fingerprint(pub)
    assert NodeIdentity(b"\x0b" * 32).node_id != alice.node_id


def test_certs_identity_signs_and_round_trips_through_pem(alice: NodeIdentity) -> None:
    sig = alice.sign(b"hello")
    assert verify_signature(alice.public_key, b"hello", sig)
    assert not verify_signature(alice.public_key, b"hellO", sig)
    assert not verify_signature(alice.public_key[:31], b"hello", sig)
    again = NodeIdentity.from_private_key_pem(alice.private_key_pem())
    assert again.public_key == alice.public_key
    assert b"BEGIN PRIVATE KEY" in alice.private_key_pem()


def test_certs_identity_rejects_wrong_seed_length() -> None:
    with pytest.raises(ValueError):
        NodeIdentity(b"short")


def test_certs_pool_root_is_deterministic_and_self_consistent(root: PoolRoot, now: float) -> None:
    assert root.pool_id == pool_id_for(root.identity.public_key)
    assert re.fullmatch(r"pool-[0-9a-f]{16}", root.pool_id)
    assert root.fingerprint == root.identity.fingerprint
    assert create_pool_root(b"\x01" * 32, "home", now).cert_der == root.cert_der
    loaded = PoolRoot.load(b"\x01" * 32, root.cert_der, "home")
    assert loaded.pool_id == root.pool_id and loaded.name == "home"


def test_certs_trust_anchor_checks_pin_and_pool(root: PoolRoot, other_root: PoolRoot) -> None:
    anchor = TrustAnchor.from_cert_der(root.cert_der, root.fingerprint, root.pool_id)
    assert anchor.fingerprint == root.fingerprint
    with pytest.raises(CertificateError) as err:
        TrustAnchor.from_cert_der(other_root.cert_der, pinned_fingerprint=root.fingerprint)
    assert err.value.reason == "fingerprint_mismatch"
    with pytest.raises(CertificateError) as err:
        TrustAnchor.from_cert_der(other_root.cert_der, pool_id=root.pool_id)
    assert err.value.reason == "pool_mismatch"
    with pytest.raises(CertificateError) as err:
        TrustAnchor.from_cert_der(b"\x30\x03junk")
    assert err.value.reason == "malformed"


def test_certs_load_refuses_mismatched_seed(root: PoolRoot) -> None:
    with pytest.raises(CertificateError):
        PoolRoot.load(b"\x03" * 32, root.cert_der, "home")
