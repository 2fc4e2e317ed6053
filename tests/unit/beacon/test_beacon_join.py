"""Two (or three) beacon machines on a fake LAN complete joins and see each other."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

from reconciler.beacon.events import DatagramDropped, JoinAnswered, JoinRequested, PeerSeen
from reconciler.beacon.joining import JoinStatus
from reconciler.beacon.machine import BeaconProtocol
from reconciler.certs.desk import AdminDesk
from reconciler.certs.member import MemberCertInfo
from reconciler.certs.tokens import TokenRecord

if TYPE_CHECKING:
    from tests.unit.beacon.conftest import Lan

ADMIN = ("10.0.0.1", 42424)
PI = ("10.0.0.2", 42424)
TOKEN = "abcdef.0123456789abcdef"


def desk_of(proto: BeaconProtocol) -> AdminDesk:
    assert proto.admin is not None
    return proto.admin


def status_of(proto: BeaconProtocol) -> JoinStatus:
    assert proto.join_status is not None
    return proto.join_status


def cert_of(proto: BeaconProtocol) -> MemberCertInfo:
    assert proto.membership is not None
    return proto.membership.info


def test_beacon_token_join_then_presence_both_ways(lan: Lan) -> None:
    admin = lan.admin(ADMIN, "token")
    desk_of(admin).add_token(TokenRecord.create(TOKEN, lan.now, usages=2))
    pi = lan.joiner(PI)
    admin.start(lan.now)
    pi.join(lan.now, TOKEN, lan.root.fingerprint)
    lan.run(1.0)
    answered = lan.of(PI, JoinAnswered)
    assert [a.status for a in answered] == ["approved"]
    assert answered[0].cert is not None and answered[0].cert.device_name == "pi"
    assert pi.membership is not None and status_of(pi).state == "joined"
    requested = lan.of(ADMIN, JoinRequested)
    assert requested[0].status == "approved" and requested[0].token_id == "abcdef"
    assert desk_of(admin).tokens["abcdef"].usages_left == 1
    lan.run(6.0)
    seen_by_admin = {e.node_id for e in lan.of(ADMIN, PeerSeen)}
    seen_by_pi = [e for e in lan.of(PI, PeerSeen)]
    assert pi.identity.node_id in seen_by_admin
    assert seen_by_pi and seen_by_pi[-1].name == "admin-box" and seen_by_pi[-1].cert.role == "admin"
    assert seen_by_pi[-1].memory_bytes == 8 << 30 and seen_by_pi[-1].port == 7000
    assert status_of(pi).state == "joined" and pi.get_timer() is not None


def test_beacon_join_retry_does_not_spend_token_twice(lan: Lan) -> None:
    admin = lan.admin(ADMIN, "token")
    desk_of(admin).add_token(TokenRecord.create(TOKEN, lan.now, usages=1))
    pi = lan.joiner(PI)
    lan.drop_if = lambda src, dst: src == ADMIN  # answers are lost
    pi.join(lan.now, TOKEN, lan.root.fingerprint)
    lan.run(4.0)
    assert pi.membership is None and status_of(pi).attempts >= 3
    assert status_of(pi).reason == "no admin heard"
    lan.drop_if = lambda src, dst: False
    lan.run(10.0)
    assert pi.membership is not None
    statuses = {e.status for e in lan.of(ADMIN, JoinRequested)}
    assert statuses == {"approved"}
    assert desk_of(admin).tokens["abcdef"].usages_left == 0


def test_beacon_approve_mode_pending_then_approved(lan: Lan) -> None:
    admin = lan.admin(ADMIN, "approve")
    pi = lan.joiner(PI, name="kitchen-pi")
    pi.join(lan.now)  # no token, no pinned root: trust on first use of the pool ID
    lan.run(0.5)
    assert [a.status for a in lan.of(PI, JoinAnswered)] == ["pending"]
    assert status_of(pi).state == "pending" and status_of(pi).reason == "pending approval"
    assert list(desk_of(admin).pending) == [pi.identity.node_id]
    lan.run(5.0)
    assert pi.membership is None  # still waiting, still retrying
    admin.approve("kitchen-pi", lan.now)
    lan.flush()
    assert lan.of(PI, JoinAnswered)[-1].status == "approved"
    assert pi.membership is not None and not desk_of(admin).pending


def test_beacon_approve_mode_deny(lan: Lan) -> None:
    admin = lan.admin(ADMIN, "approve")
    pi = lan.joiner(PI, name="intruder")
    pi.join(lan.now)
    lan.run(0.5)
    admin.deny(pi.identity.node_id, lan.now)
    lan.flush()
    assert lan.of(PI, JoinAnswered)[-1].reason == "denied by admin"
    lan.run(3.0)
    assert pi.membership is None and status_of(pi).state == "denied"


def test_beacon_auto_mode_needs_pinned_root(lan: Lan) -> None:
    lan.admin(ADMIN, "auto")
    pi = lan.joiner(PI)
    pi.join(lan.now, pinned_root_fingerprint=lan.root.fingerprint)
    lan.run(0.5)
    assert pi.membership is not None
    other = lan.joiner(("10.0.0.3", 42424), seed=b"\x11" * 32)
    other.join(lan.now)
    lan.run(0.5)
    assert other.membership is None and status_of(other).state == "denied"


def test_beacon_wrong_token_is_denied_with_reason_and_retried(lan: Lan) -> None:
    admin = lan.admin(ADMIN, "token")
    desk_of(admin).add_token(TokenRecord.create(TOKEN, lan.now))
    pi = lan.joiner(PI)
    pi.join(lan.now, "abcdef.ffffffffffffffff", lan.root.fingerprint)
    lan.run(0.5)
    status = status_of(pi)
    assert status.state == "denied" and status.reason == "token rejected: bad proof"
    lan.run(20.0)
    assert pi.membership is None and status_of(pi).attempts > status.attempts
    assert all(e.status == "denied" for e in lan.of(ADMIN, JoinRequested))


def test_beacon_join_backoff_doubles_and_caps(lan: Lan) -> None:
    pi = lan.joiner(PI)
    pi.join(lan.now, TOKEN)
    sends = []
    for _ in range(2000):  # 200 s
        if pi.datagrams_to_send(lan.now):
            sends.append(lan.now)
        lan.now += 0.1
        timer = pi.get_timer()
        if timer is not None and timer <= lan.now:
            pi.handle_timer(lan.now)
    gaps = [b - a for a, b in itertools.pairwise(sends)]
    assert 0.8 < gaps[0] < 1.3 and 1.7 < gaps[1] < 2.4 and 3.5 < gaps[2] < 4.6
    assert max(gaps) < 33.1 and gaps[-1] > 26.9
    assert status_of(pi).reason == "no admin heard"


def test_beacon_revoked_key_cannot_rejoin(lan: Lan) -> None:
    admin = lan.admin(ADMIN, "auto")
    pi = lan.joiner(PI)
    pi.join(lan.now, pinned_root_fingerprint=lan.root.fingerprint)
    lan.run(0.5)
    cert = cert_of(pi)
    admin.set_revoked({cert.cert_fingerprint})  # only the certificate is named
    again = lan.joiner(("10.0.0.9", 42424), seed=b"\x10" * 32)  # same key, fresh machine
    del lan.nodes[PI]
    again.join(lan.now, pinned_root_fingerprint=lan.root.fingerprint)
    lan.run(0.5)
    assert again.membership is None and status_of(again).reason == "revoked"
    lan.nodes[PI] = pi
    lan.run(6.0)
    drops = [e for e in lan.of(ADMIN, DatagramDropped) if e.source == PI]
    assert drops and drops[-1].reason == "revoked" and admin.drops["revoked"] >= 1


def test_beacon_certificates_are_renewed_before_expiry(lan: Lan) -> None:
    admin = lan.admin(ADMIN, "token")  # tokens exist for none: renewal needs none
    member = lan.member(PI, b"\x12" * 32, "desk")
    old_member, old_admin = cert_of(member), cert_of(admin)
    lan.now += 21 * 86400  # 9 days left of 30: inside the last third
    admin.start(lan.now)
    member.start(lan.now)
    lan.run(6.0)
    assert cert_of(member).not_after > old_member.not_after + 20 * 86400
    assert cert_of(admin).not_after > old_admin.not_after + 20 * 86400
    assert cert_of(member).device_name == "desk" and not member.renewing
    assert cert_of(admin).role == "admin"
    renewals = [e for e in lan.of(ADMIN, JoinRequested) if e.node_id == member.identity.node_id]
    assert [e.status for e in renewals] == ["approved"]
    assert [e.reason for e in lan.of(ADMIN, JoinAnswered)] == ["renewed"]


def test_beacon_renewal_refused_for_revoked_member(lan: Lan) -> None:
    admin = lan.admin(ADMIN, "token")
    member = lan.member(PI, b"\x12" * 32, "desk")
    admin.set_revoked({member.identity.fingerprint})
    member.renew(lan.now)
    lan.run(0.5)
    assert status_of(member).state == "denied" and status_of(member).reason == "revoked"
    assert member.renewing


def test_beacon_pending_requests_are_bounded(lan: Lan) -> None:
    admin = lan.admin(ADMIN, "approve")
    desk_of(admin).max_pending = 3
    for i in range(5):
        joiner = lan.joiner((f"10.0.1.{i}", 42424), seed=bytes([0x40 + i]) * 32, name=f"j{i}")
        joiner.join(lan.now)
        lan.run(0.2)
    names = sorted(p.claim.device_name for p in desk_of(admin).pending.values())
    assert len(names) == 3 and "j4" in names
