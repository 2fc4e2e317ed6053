"""Certificate material and admin records of the runtime, on a real home and store."""

from __future__ import annotations

import os
import time

from manifests import Member
from reconciler import material
from reconciler.admission_records import mark_revoked, member_name, record_join
from reconciler.beacon.events import JoinRequested
from reconciler.certs.desk import AdminDesk
from reconciler.certs.identity import NodeIdentity
from reconciler.certs.member import sign_member_certificate
from reconciler.certs.revocation import RevocationList, revoke
from reconciler.home import Home
from reconciler.pools import create_root, load_root, read_pool_info
from reconciler.runtime.revocations import Revocations, node_id_of_key
from reconciler.store import Store
from reconciler.store_admin import add_revocations


def test_admin_certificate_then_renewal_keeps_the_admin_role(home: Home) -> None:
    info = create_root(home, "p")
    me = NodeIdentity(os.urandom(32))
    material.ensure_admin_certificate(home, info, me, "admin-box", time.time())
    first = material.read_member_cert(home, "p")
    assert first is not None
    material.ensure_admin_certificate(home, info, me, "admin-box", time.time())
    assert material.read_member_cert(home, "p") == first  # still fresh: not reissued
    renewed = sign_member_certificate(
        load_root(home, "p"), me.public_key, "admin-box", "admin", time.time()
    )
    material.save_renewed(home, "p", renewed)
    assert material.read_member_cert(home, "p") == renewed
    assert read_pool_info(home, "p") == info  # role stays admin
    held = material.membership(home, info)
    assert held.info.role == "admin" and held.info.node_id == me.node_id


def test_join_records_members_and_revocation_marks_them(home: Home) -> None:
    info = create_root(home, "p")
    root = load_root(home, "p")
    joiner = NodeIdentity(os.urandom(32))
    cert = sign_member_certificate(root, joiner.public_key, "Bob's Laptop", "member", time.time())
    event = JoinRequested(
        joiner.node_id,
        "Bob's Laptop",
        joiner.fingerprint,
        ("10.0.0.2", 4),
        "approved",
        "admitted",
        None,
        cert,
    )
    with Store.open(home.root) as store:
        name = record_join(store, info, AdminDesk(root), event)
        assert name == "bob-s-laptop"
        member = store.require("Member", name)
        assert isinstance(member, Member)
        assert member.status.phase == "Joined" and member.status.node_id == joiner.node_id
        assert member.status.key_fingerprint == joiner.fingerprint
        other = NodeIdentity(os.urandom(32))
        assert member_name(store, "Bob's Laptop", other.node_id).startswith("bob-s-laptop-")
        entry = revoke(root, joiner.fingerprint, time.time(), "lost")
        add_revocations(
            store, "p", {joiner.fingerprint: RevocationList(root.anchor, [entry]).encode()}
        )
        revocations = Revocations(store, info)
        revocations.attach(root.anchor)
        assert revocations.node_ids() == {joiner.node_id}
        assert revocations.blocks(joiner.node_id, "sha256:whatever")
        mark_revoked(store, revocations.fingerprints())
        member = store.require("Member", name)
        assert isinstance(member, Member) and member.status.phase == "Revoked"


def test_revocations_refuse_forged_entries(home: Home) -> None:
    info = create_root(home, "p")
    other = create_root(Home(home.root / "other"), "p")
    forged = revoke(load_root(Home(home.root / "other"), "p"), "sha256:" + "a" * 64, time.time())
    with Store.open(home.root) as store:
        revocations = Revocations(store, info)
        revocations.attach(load_root(home, "p").anchor)
        encoded = RevocationList(
            load_root(Home(home.root / "other"), "p").anchor, [forged]
        ).encode()
        assert revocations.verify(encoded) is None
        assert revocations.fingerprints() == frozenset()
    assert other.pool_id != info.pool_id
    assert node_id_of_key("sha256:" + "ab" * 32) == "node-" + "ab" * 8


def test_revocations_verify_names_every_entry_of_a_blob(home: Home) -> None:
    """Finding 7: gossip applies every entry of a revocation blob, not only the first."""
    info = create_root(home, "p")
    root = load_root(home, "p")
    keys = [NodeIdentity(os.urandom(32)) for _ in range(3)]
    entries = [revoke(root, k.fingerprint, time.time(), "lost") for k in keys]
    with Store.open(home.root) as store:
        revocations = Revocations(store, info)
        revocations.attach(root.anchor)
        named = revocations.verify(RevocationList(root.anchor, entries).encode())
        assert named == frozenset(k.node_id for k in keys)
        assert revocations.node_ids() == {k.node_id for k in keys}
