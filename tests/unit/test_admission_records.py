"""What the admin device writes down about join requests: approved and pending ones
become Members (pending ones capped, oldest dropped), refusals from unknown keys are
only counted, rate-limited ones leave no trace, and a revoked Member stays revoked."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from manifests import Member
from reconciler import admission_records
from reconciler.admission_records import find_member, mark_revoked, record_join
from reconciler.beacon.events import JoinRequested
from reconciler.certs.desk import AdminDesk
from reconciler.certs.identity import NodeIdentity
from reconciler.certs.joinlimits import RATE_LIMITED
from reconciler.certs.member import cert_fingerprint, sign_member_certificate
from reconciler.certs.root import PoolRoot
from reconciler.home import Home
from reconciler.poolinfo import PoolInfo
from reconciler.pools import create_root, load_root
from reconciler.store import Store
from reconciler.store_admin import denials


class Admin:
    def __init__(self, home: Home, store: Store) -> None:
        self.info: PoolInfo = create_root(home, "p")
        self.root: PoolRoot = load_root(home, "p")
        self.desk = AdminDesk(self.root)
        self.store = store

    def request(
        self, who: NodeIdentity, status: str, reason: str = "why", device: str = "Pi 4"
    ) -> str | None:
        cert = b""
        if status == "approved":
            cert = sign_member_certificate(self.root, who.public_key, device, "member", time.time())
        event = JoinRequested(
            who.node_id, device, who.fingerprint, ("127.0.0.9", 42424), status, reason, None, cert
        )
        return record_join(self.store, self.info, self.desk, event)

    def member(self, name: str) -> Member:
        obj = self.store.require("Member", name)
        assert isinstance(obj, Member)
        return obj


@pytest.fixture
def admin(home: Home) -> Iterator[Admin]:
    with Store.open(home.root) as store:
        yield Admin(home, store)


def _key() -> NodeIdentity:
    return NodeIdentity(os.urandom(32))


def test_a_pending_request_becomes_a_member_that_approval_then_joins(admin: Admin) -> None:
    pi = _key()
    name = admin.request(pi, "pending", "waiting for approval")
    assert name == "pi-4"
    pending = admin.member("pi-4")
    assert pending.status.phase == "Pending" and pending.status.node_id == pi.node_id
    assert pending.spec.pool.id == admin.info.pool_id and pending.spec.device_name == "Pi 4"

    assert admin.request(pi, "approved", "approved by admin") == "pi-4"  # same Member
    joined = admin.member("pi-4")
    assert joined.status.phase == "Joined" and joined.status.key_fingerprint == pi.fingerprint
    extra = joined.status.model_dump(by_alias=True)
    assert extra["certificateFingerprint"].startswith("sha256:")
    assert [(e.type, e.reason) for e in admin.store.events("Member", "pi-4")] == [
        ("Normal", "JoinPending"),
        ("Normal", "JoinApproved"),
    ]
    assert find_member(admin.store, pi.node_id) == joined


def test_refusals_of_unknown_keys_are_counted_not_stored(admin: Admin) -> None:
    for _ in range(3):
        assert admin.request(_key(), "denied", "bad token") is None
    assert admin.request(_key(), "denied", RATE_LIMITED) is None
    assert admin.store.list("Member") == []
    assert admin.store.events() == []
    (counted,) = denials(admin.store, "p")
    assert (counted.reason, counted.count, counted.last_source) == ("bad token", 3, "127.0.0.9")


def test_a_known_member_refused_is_marked_denied_with_a_warning(admin: Admin) -> None:
    pi = _key()
    admin.request(pi, "pending")
    assert admin.request(pi, "denied", "denied by admin") == "pi-4"
    assert admin.member("pi-4").status.phase == "Denied"
    assert admin.store.events("Member", "pi-4")[-1].type == "Warning"
    assert denials(admin.store) == []


def test_a_revoked_member_stays_revoked_when_it_asks_again(admin: Admin) -> None:
    pi, other = _key(), _key()
    admin.request(pi, "approved", device="pi")
    admin.request(other, "approved", device="other")
    mark_revoked(admin.store, frozenset({pi.fingerprint}))
    assert admin.member("pi").status.phase == "Revoked"
    assert admin.member("other").status.phase == "Joined"
    admin.request(pi, "approved", device="pi")
    assert admin.member("pi").status.phase == "Revoked"


def test_a_certificate_fingerprint_does_not_revoke_by_key(admin: Admin) -> None:
    pi = _key()
    admin.request(pi, "approved", device="pi")
    cert = sign_member_certificate(admin.root, pi.public_key, "pi", "member", time.time())
    mark_revoked(admin.store, frozenset({cert_fingerprint(cert)}))
    assert admin.member("pi").status.phase == "Joined"


def test_devices_with_one_name_get_distinct_members(admin: Admin) -> None:
    first, second, third = _key(), _key(), _key()
    names = [admin.request(k, "approved", device="Pi 4") for k in (first, second, third)]
    assert names[0] == "pi-4" and len(set(names)) == 3
    assert all(n is not None and n.startswith("pi-4-") for n in names[1:])
    for key, name in zip((first, second, third), names, strict=True):
        member = find_member(admin.store, key.node_id)
        assert member is not None and member.metadata.name == name
    assert find_member(admin.store, _key().node_id) is None


def test_pending_requests_are_capped_dropping_the_oldest(
    admin: Admin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(admission_records, "MAX_PENDING_MEMBERS", 3)
    keys = [_key() for _ in range(5)]
    names = [admin.request(k, "pending", device=f"box{i}") for i, k in enumerate(keys)]
    assert sorted(m.metadata.name for m in admin.store.list("Member")) == names[2:]
    assert admin.store.events("Member", "box0") == []  # its events went with it
    approved = _key()
    admin.request(approved, "approved", device="kept")  # approvals are never dropped
    admin.request(_key(), "pending", device="box5")
    left = {m.metadata.name for m in admin.store.list("Member")}
    assert "kept" in left and "box2" not in left and len(left) == 4
