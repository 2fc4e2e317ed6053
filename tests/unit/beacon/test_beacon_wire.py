"""Envelope and message encoding: round trips, size bound, truncation and fuzzing."""

from __future__ import annotations

import contextlib
import random

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from reconciler.beacon.events import DatagramDropped
from reconciler.beacon.machine import Advert, BeaconConfig, BeaconProtocol
from reconciler.beacon.messages import (
    Common,
    JoinRequest,
    JoinResponse,
    Message,
    Presence,
    decode_body,
    encode_body,
)
from reconciler.beacon.replay import ReplayGuard
from reconciler.beacon.wire import MAX_DATAGRAM, MsgType, open_envelope, seal
from reconciler.certs.desk import AdminDesk
from reconciler.certs.identity import NodeIdentity, verify_signature
from reconciler.certs.member import sign_member_certificate
from reconciler.certs.root import create_pool_root
from reconciler.codec import DecodeError

NOW = 1_750_000_000.0
ROOT = create_pool_root(b"\x01" * 32, "home", NOW)
IDENT = NodeIdentity(b"\x22" * 32)
LONG_NAME = "d" * 64
CERT = sign_member_certificate(ROOT, IDENT.public_key, LONG_NAME, "member", NOW)
COMMON = Common(ROOT.pool_id, 12345, int(NOW * 1000))
MESSAGES: dict[MsgType, Message] = {
    MsgType.PRESENCE: Presence(
        IDENT.node_id, LONG_NAME, "fe80::1234:5678:9abc:def0", 7000, 1 << 40, 64, b"h" * 32, CERT
    ),
    MsgType.JOIN_REQUEST: JoinRequest(
        IDENT.public_key, IDENT.node_id, LONG_NAME, b"n" * 16, ROOT.fingerprint, "abcdef", b"p" * 32
    ),
    MsgType.JOIN_RESPONSE: JoinResponse(
        IDENT.node_id, b"n" * 16, "approved", "admitted", CERT, ROOT.cert_der
    ),
}
DATAGRAMS = {t: seal(t, encode_body(COMMON, m), IDENT.sign) for t, m in MESSAGES.items()}


@pytest.mark.parametrize("msg_type", list(MsgType))
def test_beacon_round_trip_and_size(msg_type: MsgType) -> None:
    data = DATAGRAMS[msg_type]
    assert len(data) <= MAX_DATAGRAM
    env = open_envelope(data)
    assert env.msg_type is msg_type
    assert verify_signature(IDENT.public_key, env.signed_bytes, env.signature)
    assert env.signed_bytes.startswith(b"meshnet-beacon-v1\x00")
    assert decode_body(msg_type, env.body) == (COMMON, MESSAGES[msg_type])


def test_beacon_seal_refuses_oversize() -> None:
    with pytest.raises(ValueError):
        seal(MsgType.PRESENCE, b"x" * 1200, IDENT.sign)


@pytest.mark.parametrize("msg_type", list(MsgType))
def test_beacon_every_truncation_is_a_decode_error(msg_type: MsgType) -> None:
    data = DATAGRAMS[msg_type]
    for cut in range(len(data)):
        with pytest.raises(DecodeError) as err:
            open_envelope(data[:cut])
        assert err.value.reason in {"truncated", "garbage"}
    body = open_envelope(data).body
    for cut in range(len(body)):
        with pytest.raises(DecodeError):
            decode_body(msg_type, body[:cut])


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.binary(max_size=1300), st.sampled_from(list(MsgType)))
def test_beacon_decoder_raises_only_its_own_error(data: bytes, msg_type: MsgType) -> None:
    try:
        env = open_envelope(data)
    except DecodeError:
        pass
    else:
        assert env.msg_type in MsgType
    with contextlib.suppress(DecodeError):
        decode_body(msg_type, data)


def _machines() -> list[BeaconProtocol]:
    from reconciler.beacon.machine import Membership
    from reconciler.certs.member import verify_member_certificate

    config = BeaconConfig(ROOT.pool_id, (("239.192.0.1", 42424),))
    advert = Advert("rx", "10.0.0.1", 7000, 1, 1)
    rx_ident = NodeIdentity(b"\x21" * 32)
    rx_cert = sign_member_certificate(ROOT, rx_ident.public_key, "rx", "admin", NOW)
    member = Membership(ROOT.anchor, rx_cert, verify_member_certificate(rx_cert, ROOT.anchor, NOW))
    admin = BeaconProtocol(
        config, rx_ident, advert, random.Random(0), membership=member, admin=AdminDesk(ROOT, "auto")
    )
    joiner = BeaconProtocol(config, IDENT, advert, random.Random(0))
    joiner.join(NOW, pinned_root_fingerprint=ROOT.fingerprint)
    joiner.datagrams_to_send(NOW)
    return [admin, joiner]


MACHINES = _machines()


@settings(
    max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    st.sampled_from(list(MsgType)),
    st.lists(st.tuples(st.integers(0, 1300), st.integers(1, 255)), min_size=1, max_size=4),
    st.sampled_from(["flip", "insert", "delete"]),
)
def test_beacon_mutated_datagrams_are_dropped_never_raised(
    msg_type: MsgType, edits: list[tuple[int, int]], how: str
) -> None:
    data = bytearray(DATAGRAMS[msg_type])
    for pos, value in edits:
        at = pos % len(data)
        if how == "flip":
            data[at] ^= value
        elif how == "insert":
            data.insert(at, value)
        elif len(data) > 1:
            del data[at]
    assume(bytes(data) != DATAGRAMS[msg_type])  # edits may cancel out
    for machine in MACHINES:
        machine.receive_datagram(bytes(data), ("10.0.0.2", 42424), NOW)
        event = machine.next_event()
        assert isinstance(event, DatagramDropped), event
        assert machine.next_event() is None


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.binary(max_size=1300))
def test_beacon_machine_never_raises_on_garbage(data: bytes) -> None:
    for machine in MACHINES:
        machine.receive_datagram(data, ("10.0.0.2", 42424), NOW)
        assert isinstance(machine.next_event(), DatagramDropped)


def test_beacon_replay_guard_window() -> None:
    guard = ReplayGuard(window=8, max_senders=2, horizon=120.0)
    assert guard.check("a", 100, NOW) is None
    guard.commit("a", 100, NOW)
    assert guard.check("a", 100, NOW) == "replay"
    assert guard.check("a", 95, NOW) is None
    guard.commit("a", 95, NOW)
    assert guard.check("a", 95, NOW) == "replay"
    assert guard.check("a", 92, NOW) == "stale_seq"
    guard.commit("a", 120, NOW)
    assert guard.check("a", 112, NOW) == "stale_seq" and guard.check("a", 113, NOW) is None


def test_beacon_replay_guard_full_of_live_senders_refuses_newcomers() -> None:
    """Finding 11: fresh keys must not push out a sender whose beacons can still replay."""
    guard = ReplayGuard(window=8, max_senders=2, horizon=120.0)
    guard.commit("a", 100, NOW)
    guard.commit("b", 1, NOW + 60)  # b's clock runs ahead: its entry lives longer
    assert guard.check("c", 1, NOW + 100) == "replay_table_full"
    assert guard.refused == 1 and guard.check("a", 100, NOW + 100) == "replay"
    assert guard.check("c", 1, NOW + 121) is None  # a's beacons have all expired by now
    guard.commit("c", 1, NOW + 121)
    assert len(guard) == 2 and guard.check("b", 1, NOW + 121) == "replay"
    assert guard.check("a", 101, NOW + 121) == "replay_table_full"  # b and c are live


def test_beacon_worst_case_join_response_fits() -> None:
    from reconciler.beacon.config import Advert
    from reconciler.beacon.messages import clip_utf8

    cert = sign_member_certificate(ROOT, IDENT.public_key, "é" * 32, "member", NOW)
    reason = clip_utf8("é" * 200, 100)
    assert len(reason.encode()) == 100
    worst = JoinResponse(IDENT.node_id, b"n" * 16, "approved", reason, cert, ROOT.cert_der)
    common = Common(ROOT.pool_id, 2**64 - 1, 2**64 - 1)
    assert len(seal(MsgType.JOIN_RESPONSE, encode_body(common, worst), IDENT.sign)) <= 1200
    with pytest.raises(ValueError):
        Advert("x" * 65, "10.0.0.1", 1, 1, 1)
