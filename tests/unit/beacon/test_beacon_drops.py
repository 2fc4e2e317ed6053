"""Forged, stale and malformed beacons are dropped with the right reason, never raised."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from reconciler.beacon.events import DatagramDropped, Event, PeerSeen
from reconciler.beacon.machine import BeaconProtocol
from reconciler.beacon.messages import (
    Common,
    JoinRequest,
    JoinResponse,
    Message,
    Presence,
    encode_body,
)
from reconciler.beacon.wire import MsgType, seal
from reconciler.certs.identity import NodeIdentity
from reconciler.certs.member import sign_member_certificate
from reconciler.certs.root import PoolRoot

if TYPE_CHECKING:
    from tests.unit.beacon.conftest import Lan

RX = ("10.0.0.1", 42424)
TX = ("10.0.0.2", 42424)
MEMBER_SEED = b"\x22" * 32
TYPES = {
    Presence: MsgType.PRESENCE,
    JoinRequest: MsgType.JOIN_REQUEST,
    JoinResponse: MsgType.JOIN_RESPONSE,
}
Sender = tuple[NodeIdentity, bytes]


def forge(msg: Message, signer: NodeIdentity, pool_id: str, seq: int, ts: float) -> bytes:
    body = encode_body(Common(pool_id, seq, int(ts * 1000)), msg)
    return seal(TYPES[type(msg)], body, signer.sign)


def presence(cert: bytes, ident: NodeIdentity, name: str = "m") -> Presence:
    return Presence(ident.node_id, name, "10.0.0.2", 7000, 1 << 30, 2, b"", cert)


@pytest.fixture()
def rx(lan: Lan) -> BeaconProtocol:
    return lan.member(RX, b"\x21" * 32, "receiver")


@pytest.fixture()
def sender(lan: Lan) -> Sender:
    ident = NodeIdentity(MEMBER_SEED)
    return ident, sign_member_certificate(lan.root, ident.public_key, "m", "member", lan.now)


def last_drop(rx: BeaconProtocol) -> str:
    events: list[Event] = []
    while (e := rx.next_event()) is not None:
        events.append(e)
    assert events and isinstance(events[-1], DatagramDropped), events
    return events[-1].reason.value


def deliver(rx: BeaconProtocol, data: bytes, now: float) -> str:
    rx.receive_datagram(data, TX, now)
    return last_drop(rx)


def test_beacon_valid_presence_is_seen(lan: Lan, rx: BeaconProtocol, sender: Sender) -> None:
    ident, cert = sender
    rx.receive_datagram(
        forge(presence(cert, ident), ident, lan.root.pool_id, 1, lan.now), TX, lan.now
    )
    event = rx.next_event()
    assert isinstance(event, PeerSeen) and event.node_id == ident.node_id and event.source == TX
    assert event.clock_skew == pytest.approx(0.0, abs=0.001)


def test_beacon_signed_by_wrong_key(lan: Lan, rx: BeaconProtocol, sender: Sender) -> None:
    ident, cert = sender
    data = forge(presence(cert, ident), NodeIdentity(b"\x66" * 32), lan.root.pool_id, 1, lan.now)
    assert deliver(rx, data, lan.now) == "bad_signature"


def test_beacon_modified_byte(lan: Lan, rx: BeaconProtocol, sender: Sender) -> None:
    ident, cert = sender
    data = bytearray(forge(presence(cert, ident, "honest"), ident, lan.root.pool_id, 1, lan.now))
    at = data.index(b"honest")
    data[at] ^= 0x20
    assert deliver(rx, bytes(data), lan.now) == "bad_signature"


def test_beacon_cert_of_another_pool(lan: Lan, rx: BeaconProtocol, other_root: PoolRoot) -> None:
    ident = NodeIdentity(MEMBER_SEED)
    foreign = sign_member_certificate(other_root, ident.public_key, "m", "member", lan.now)
    data = forge(presence(foreign, ident), ident, lan.root.pool_id, 1, lan.now)
    assert deliver(rx, data, lan.now) == "untrusted_cert"
    data = forge(presence(foreign, ident), ident, other_root.pool_id, 1, lan.now)
    assert deliver(rx, data, lan.now) == "other_pool"


def test_beacon_revoked_cert(lan: Lan, rx: BeaconProtocol, sender: Sender) -> None:
    ident, cert = sender
    rx.set_revoked({ident.fingerprint})
    data = forge(presence(cert, ident), ident, lan.root.pool_id, 1, lan.now)
    assert deliver(rx, data, lan.now) == "revoked"
    assert rx.drops["revoked"] == 1


def test_beacon_replay_and_stale_sequence(lan: Lan, rx: BeaconProtocol, sender: Sender) -> None:
    ident, cert = sender
    pool = lan.root.pool_id
    first = forge(presence(cert, ident), ident, pool, 1000, lan.now)
    rx.receive_datagram(first, TX, lan.now)
    assert isinstance(rx.next_event(), PeerSeen)
    assert deliver(rx, first, lan.now + 1) == "replay"
    rx.receive_datagram(forge(presence(cert, ident), ident, pool, 1100, lan.now), TX, lan.now)
    assert isinstance(rx.next_event(), PeerSeen)
    older_in_window = forge(presence(cert, ident), ident, pool, 1090, lan.now)
    rx.receive_datagram(older_in_window, TX, lan.now)
    assert isinstance(rx.next_event(), PeerSeen)  # reordered, not replayed: accepted once
    assert deliver(rx, older_in_window, lan.now) == "replay"
    stale = forge(presence(cert, ident), ident, pool, 1001, lan.now)
    assert deliver(rx, stale, lan.now) == "stale_seq"
    assert rx.drops == {"replay": 2, "stale_seq": 1}


def test_beacon_timestamps_outside_skew(lan: Lan, rx: BeaconProtocol, sender: Sender) -> None:
    ident, cert = sender
    old = forge(presence(cert, ident), ident, lan.root.pool_id, 1, lan.now - 500)
    assert deliver(rx, old, lan.now) == "expired"
    future = forge(presence(cert, ident), ident, lan.root.pool_id, 2, lan.now + 500)
    assert deliver(rx, future, lan.now) == "clock_skew"


def test_beacon_own_beacon_looped_back(lan: Lan, rx: BeaconProtocol) -> None:
    rx.start(lan.now)
    [(data, _)] = rx.datagrams_to_send(lan.now)
    assert deliver(rx, data, lan.now) == "self"


def test_beacon_join_request_to_non_admin(lan: Lan, rx: BeaconProtocol) -> None:
    joiner = NodeIdentity(b"\x33" * 32)
    req = JoinRequest(joiner.public_key, joiner.node_id, "j", b"n" * 16)
    assert deliver(rx, forge(req, joiner, lan.root.pool_id, 1, lan.now), lan.now) == "unexpected"


def test_beacon_forged_join_responses(lan: Lan, other_root: PoolRoot) -> None:
    pi = lan.joiner(TX)
    pi.join(lan.now, pinned_root_fingerprint=lan.root.fingerprint)
    assert pi._joiner is not None
    nonce = pi._joiner.nonce
    node = pi.identity.node_id
    pool = lan.root.pool_id
    fake = JoinResponse(node, nonce, "denied", "go away", b"", other_root.cert_der)
    assert (
        deliver(pi, forge(fake, other_root.identity, pool, 1, lan.now), lan.now) == "untrusted_cert"
    )
    real_root_cert = JoinResponse(node, nonce, "denied", "go away", b"", lan.root.cert_der)
    wrong_signer = forge(real_root_cert, other_root.identity, pool, 2, lan.now)
    assert deliver(pi, wrong_signer, lan.now) == "bad_signature"
    elsewhere = JoinResponse("node-0000000000000000", nonce, "denied", "x", b"", lan.root.cert_der)
    assert (
        deliver(pi, forge(elsewhere, lan.root.identity, pool, 3, lan.now), lan.now) == "not_for_us"
    )
    foreign_cert = sign_member_certificate(
        other_root, pi.identity.public_key, "pi", "member", lan.now
    )
    bad_cert = JoinResponse(node, nonce, "approved", "ok", foreign_cert, lan.root.cert_der)
    assert (
        deliver(pi, forge(bad_cert, lan.root.identity, pool, 4, lan.now), lan.now)
        == "untrusted_cert"
    )
    assert pi.membership is None
    assert pi.join_status is not None and pi.join_status.reason == "no admin heard"


def test_beacon_framing_errors_are_counted(lan: Lan, rx: BeaconProtocol, sender: Sender) -> None:
    ident, cert = sender
    good = forge(presence(cert, ident), ident, lan.root.pool_id, 1, lan.now)
    assert deliver(rx, b"", lan.now) == "truncated"
    assert deliver(rx, good[:-1], lan.now) == "truncated"
    assert deliver(rx, b"GET / HTTP/1.1\r\n\r\n", lan.now) == "garbage"
    assert deliver(rx, good + b"x", lan.now) == "garbage"
    assert deliver(rx, b"x" * 1201, lan.now) == "too_large"
    assert deliver(rx, good[:2] + b"\x09" + good[3:], lan.now) == "bad_version"
    assert deliver(rx, good[:3] + b"\x09" + good[4:], lan.now) == "unknown_type"
    assert sum(rx.drops.values()) == 7


def test_beacon_flood_of_fresh_keys_cannot_reopen_the_replay_window(lan: Lan) -> None:
    """Finding 11: join requests signed by thousands of fresh keys (anyone can make
    them) used to evict the sender table, after which old presences replayed."""
    from dataclasses import replace

    admin = lan.admin(RX)
    admin.config = replace(admin.config, replay_senders=4)
    admin.__init__(  # type: ignore[misc]
        admin.config, admin.identity, admin.advert, admin._rng,
        membership=admin.membership, admin=admin.admin,
    )  # fmt: skip
    ident = NodeIdentity(MEMBER_SEED)
    cert = sign_member_certificate(lan.root, ident.public_key, "m", "member", lan.now)
    first = forge(presence(cert, ident), ident, lan.root.pool_id, 1000, lan.now)
    admin.receive_datagram(first, TX, lan.now)
    assert isinstance(admin.next_event(), PeerSeen)
    for i in range(12):
        joiner = NodeIdentity(bytes([i + 1]) * 32)
        request = JoinRequest(joiner.public_key, joiner.node_id, f"j{i}", b"n" * 16)
        source = (f"10.0.1.{i}", 42424)  # a flood comes from (forged) sources everywhere
        admin.receive_datagram(
            forge(request, joiner, lan.root.pool_id, 1, lan.now), source, lan.now
        )
    while admin.next_event() is not None:
        pass
    assert deliver(admin, first, lan.now + 1) == "replay"
    assert admin.drops["replay_table_full"] == 12 - 4


def test_beacon_body_errors_are_counted_under_the_codec_reasons(
    lan: Lan, rx: BeaconProtocol, sender: Sender
) -> None:
    """A well-framed, correctly signed datagram whose body does not decode."""
    ident, cert = sender
    body = encode_body(Common(lan.root.pool_id, 1, int(lan.now * 1000)), presence(cert, ident))
    cut = seal(MsgType.PRESENCE, body[:-3], ident.sign)
    bad_utf8 = seal(MsgType.PRESENCE, b"\x00\x02\xc3\x28" + body[2:], ident.sign)
    extra = seal(MsgType.PRESENCE, body + b"\x00", ident.sign)
    assert deliver(rx, cut, lan.now) == "truncated"
    assert deliver(rx, bad_utf8, lan.now) == "garbage"
    assert deliver(rx, extra, lan.now) == "garbage"
    assert rx.drops["truncated"] == 1 and rx.drops["garbage"] == 2
