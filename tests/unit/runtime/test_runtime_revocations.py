"""A pool's revocations on this device: entries signed by the pool root, read from the
store (so a restart remembers them), learnt from gossip (and then stored), and
consulted by peer links by key or by certificate."""

from __future__ import annotations

import os
import time

import pytest

from reconciler.certs.identity import NodeIdentity
from reconciler.certs.member import cert_fingerprint, sign_member_certificate
from reconciler.certs.revocation import RevocationList, revoke
from reconciler.certs.root import PoolRoot
from reconciler.home import Home
from reconciler.poolinfo import PoolInfo
from reconciler.pools import create_root, load_root
from reconciler.runtime.revocations import Revocations
from reconciler.store import Store
from reconciler.store_admin import add_revocations, record_revocation
from reconciler.store_admin import revocations as stored


@pytest.fixture
def pool(home: Home) -> tuple[PoolInfo, PoolRoot]:
    info = create_root(home, "p")
    return info, load_root(home, "p")


def _blob(root: PoolRoot, *fingerprints: str) -> bytes:
    now = time.time()
    return RevocationList(
        root.anchor, [revoke(root, fp, now, "lost") for fp in fingerprints]
    ).encode()


def _key() -> NodeIdentity:
    return NodeIdentity(os.urandom(32))


def test_reload_yields_each_valid_stored_entry_once(
    home: Home, pool: tuple[PoolInfo, PoolRoot]
) -> None:
    info, root = pool
    lost, stolen = _key(), _key()
    with Store.open(home.root) as store:
        revocations = Revocations(store, info)
        record_revocation(store, root, lost.fingerprint, time.time())
        revocations.attach(root.anchor)  # entries already stored are taken at attach
        assert revocations.node_ids() == {lost.node_id}
        assert revocations.reload() == []  # nothing new since

        record_revocation(store, root, stolen.fingerprint, time.time())
        (new,) = revocations.reload()
        assert RevocationList.decode(new, root.anchor).fingerprints() == {stolen.fingerprint}
        assert revocations.fingerprints() == {lost.fingerprint, stolen.fingerprint}
        assert revocations.reload() == []


def test_entries_the_pool_root_did_not_sign_are_ignored(
    home: Home, pool: tuple[PoolInfo, PoolRoot]
) -> None:
    info, root = pool
    other_home = Home(home.root / "other")
    create_root(other_home, "p")
    forger = load_root(other_home, "p")
    victim = _key()
    with Store.open(home.root) as store:
        add_revocations(store, "p", {victim.fingerprint: _blob(forger, victim.fingerprint)})
        add_revocations(store, "p", {"sha256:junk": b"not a revocation list"})
        revocations = Revocations(store, info)
        revocations.attach(root.anchor)
        assert revocations.reload() == [] and revocations.entries() == []
        assert not revocations.blocks(victim.node_id, "sha256:any")
        assert revocations.verify(_blob(forger, victim.fingerprint)) is None
        assert revocations.verify(b"\x00garbage") is None


def test_nothing_is_trusted_before_the_anchor_is_attached(
    home: Home, pool: tuple[PoolInfo, PoolRoot]
) -> None:
    info, root = pool
    key = _key()
    with Store.open(home.root) as store:
        revocations = Revocations(store, info)
        assert revocations.verify(_blob(root, key.fingerprint)) is None
        assert stored(store, "p") == {}


def test_gossiped_entries_are_stored_and_survive_a_restart(
    home: Home, pool: tuple[PoolInfo, PoolRoot]
) -> None:
    info, root = pool
    a, b = _key(), _key()
    with Store.open(home.root) as store:
        revocations = Revocations(store, info)
        revocations.attach(root.anchor)
        named = revocations.verify(_blob(root, a.fingerprint, b.fingerprint))
        assert named == frozenset({a.node_id, b.node_id})
        assert set(stored(store, "p")) == {a.fingerprint, b.fingerprint}
        assert revocations.verify(_blob(root, a.fingerprint)) == frozenset(
            {a.node_id}
        )  # known: still named
        assert len(revocations.entries()) == 2

    with Store.open(home.root) as store:  # the agent restarts
        again = Revocations(store, info)
        again.attach(root.anchor)
        assert again.node_ids() == frozenset({a.node_id, b.node_id})
        assert again.blocks(a.node_id, "sha256:fresh-certificate")


def test_a_revoked_key_or_certificate_blocks_the_peer(
    home: Home, pool: tuple[PoolInfo, PoolRoot]
) -> None:
    info, root = pool
    by_key, by_cert, fine = _key(), _key(), _key()
    cert = sign_member_certificate(root, by_cert.public_key, "laptop", "member", time.time())
    with Store.open(home.root) as store:
        revocations = Revocations(store, info)
        revocations.attach(root.anchor)
        revocations.verify(_blob(root, by_key.fingerprint, cert_fingerprint(cert)))
        assert revocations.blocks(by_key.node_id, "sha256:" + "0" * 64)
        assert revocations.blocks(by_cert.node_id, cert_fingerprint(cert))
        assert not revocations.blocks(fine.node_id, "sha256:" + "0" * 64)
        reissued = sign_member_certificate(
            root, by_cert.public_key, "laptop", "member", time.time() + 1
        )
        assert not revocations.blocks(by_cert.node_id, cert_fingerprint(reissued))
