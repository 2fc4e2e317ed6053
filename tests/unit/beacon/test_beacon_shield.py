"""The admin is no reflector and no CPU sink (finding 12): padded join requests, rate
limits before signature checks, and certificates verified once."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from reconciler.beacon import messages
from reconciler.beacon.events import DatagramDropped, PeerSeen
from reconciler.beacon.machine import BeaconProtocol
from reconciler.beacon.messages import Common, JoinRequest, Presence, encode_body
from reconciler.beacon.shield import JoinShield, TokenBuckets
from reconciler.beacon.wire import AMPLIFICATION, MIN_JOIN_REQUEST, MsgType, seal
from reconciler.certs.identity import NodeIdentity
from reconciler.certs.member import sign_member_certificate

if TYPE_CHECKING:
    from tests.unit.beacon.conftest import Lan

ADMIN = ("10.0.0.1", 42424)
PI = ("10.0.0.2", 42424)


def join_request(lan: Lan, seed: int, seq: int = 1) -> bytes:
    joiner = NodeIdentity(bytes([seed]) * 32)
    msg = JoinRequest(joiner.public_key, joiner.node_id, f"j{seed}", b"n" * 16)
    body = encode_body(Common(lan.root.pool_id, seq, int(lan.now * 1000)), msg)
    return seal(MsgType.JOIN_REQUEST, body, joiner.sign)


def drops(proto: BeaconProtocol) -> list[str]:
    out: list[str] = []
    while (e := proto.next_event()) is not None:
        if isinstance(e, DatagramDropped):
            out.append(e.reason.value)
    return out


def test_answers_are_at_most_three_times_their_request(lan: Lan) -> None:
    admin = lan.admin(ADMIN, "auto")  # auto: every request earns a full certificate
    pi = lan.joiner(PI)
    pi.join(lan.now, None, lan.root.fingerprint)
    lan.run(0.5)
    assert pi.membership is not None
    requests = [len(d) for src, d, _ in lan.wire_log if src == PI]
    answers = [len(d) for src, d, dst in lan.wire_log if src == ADMIN and dst == PI]
    assert answers and min(requests) >= MIN_JOIN_REQUEST
    assert max(answers) <= AMPLIFICATION * min(requests)
    assert admin.drops == {}


def test_an_unpadded_join_request_is_not_answered(
    lan: Lan, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = lan.admin(ADMIN, "auto")
    monkeypatch.setattr(messages, "_MIN_JOIN_BODY", 0)
    small = join_request(lan, 7)
    assert len(small) < MIN_JOIN_REQUEST
    admin.receive_datagram(small, PI, lan.now)
    assert drops(admin) == ["unpadded"] and admin.datagrams_to_send(lan.now) == []


def test_join_requests_are_rate_limited_per_source_before_verification(lan: Lan) -> None:
    admin = lan.admin(ADMIN, "approve")
    for seed in range(1, 31):  # one source, 30 fresh keys at the same instant
        admin.receive_datagram(join_request(lan, seed), PI, lan.now)
    answered = len(admin.datagrams_to_send(lan.now))
    assert answered == 10 and drops(admin).count("rate_limited") == 20
    admin.receive_datagram(join_request(lan, 40), ("10.0.0.3", 42424), lan.now)
    assert len(admin.datagrams_to_send(lan.now)) == 1  # another source is not held back
    lan.now += 1.0
    admin.receive_datagram(join_request(lan, 41), PI, lan.now)
    assert len(admin.datagrams_to_send(lan.now)) == 1  # two a second come back


def test_token_buckets_refill_and_stay_bounded() -> None:
    buckets = TokenBuckets(rate=2.0, burst=3.0, max_keys=4)
    assert [buckets.allow("a", 0.0) for _ in range(4)] == [True, True, True, False]
    assert buckets.allow("a", 0.5) and not buckets.allow("a", 0.5)
    for i in range(100):
        buckets.allow(f"k{i}", 1.0)
    assert len(buckets._buckets) == 4
    shield = JoinShield(per_source=100.0, burst=100.0, overall=5.0)
    admitted = [shield.admit(f"10.0.{i}.1", 500, 0.0) for i in range(8)]
    assert admitted.count(None) == 5 and shield.refused == 3  # the overall cap holds


def test_a_members_certificate_is_verified_once_and_still_revocable(lan: Lan) -> None:
    rx = lan.member(ADMIN, b"\x21" * 32, "receiver")
    ident = NodeIdentity(b"\x22" * 32)
    cert = sign_member_certificate(lan.root, ident.public_key, "m", "member", lan.now)
    for seq in range(1, 6):
        msg = Presence(ident.node_id, "m", "10.0.0.2", 7000, 1 << 30, 2, b"", cert)
        body = encode_body(Common(lan.root.pool_id, seq, int(lan.now * 1000)), msg)
        rx.receive_datagram(seal(MsgType.PRESENCE, body, ident.sign), PI, lan.now)
    seen = [e for e in iter(rx.next_event, None) if isinstance(e, PeerSeen)]
    assert len(seen) == 5 and rx._certs.verifications == 1
    rx.set_revoked({ident.fingerprint})
    body = encode_body(Common(lan.root.pool_id, 9, int(lan.now * 1000)), msg)
    rx.receive_datagram(seal(MsgType.PRESENCE, body, ident.sign), PI, lan.now)
    assert drops(rx) == ["revoked"]
