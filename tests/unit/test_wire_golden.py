"""Every binary wire format stays byte-identical across codec changes.

``tests/fixtures/wire/golden.json`` holds the bytes of a representative message of
each kind (beacon bodies and one sealed envelope, every gossip body and broadcast
including the measure bodies, a revocation list, every relay frame), recorded with the
two codecs that ``reconciler/codec.py`` replaced. Existing pools and stored lists keep
working only if today's code writes exactly those bytes and reads them back to the
same values. Never re-record the file to make this test pass: a difference is a
wire-format break.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest

from reconciler.beacon import messages as b
from reconciler.beacon.wire import MsgType, open_envelope, seal
from reconciler.certs.identity import NodeIdentity
from reconciler.certs.revocation import RevocationList, revoke
from reconciler.certs.root import create_pool_root
from reconciler.gossip import messages as g
from reconciler.gossip.states import MemberState
from reconciler.relay import framing
from reconciler.relay import messages as r

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "wire" / "golden.json"
NOW = 1_750_000_000.0
HASH = "ab" * 32


@dataclass(frozen=True)
class Case:
    """A value, how to encode it, and how to decode the bytes back."""

    value: object
    encode: Callable[[], bytes]
    decode: Callable[[bytes], object]


# -- beacon -------------------------------------------------------------------------

COMMON = b.Common("pool-0123456789abcdef", 5, int(NOW * 1000))
PRESENCE = b.Presence("node-a", "laptop", "192.0.2.7", 7000, 1 << 30, 4, b"\xab" * 32, b"0\x82der")
JOIN_REQUESTS = {
    "token": b.JoinRequest(b"\x11" * 32, "node-j", "pi", b"n" * 16, "sha256:ff", "abcdef",
                           b"\x22" * 32),
    "renewal": b.JoinRequest(b"\x11" * 32, "node-j", "pi", b"m" * 16, current_cert_der=b"old"),
}  # fmt: skip
JOIN_RESPONSES = {
    "approved": b.JoinResponse("node-j", b"n" * 16, "approved", "", b"cert", b"root"),
    "pending": b.JoinResponse("node-j", b"n" * 16, "pending", "waiting for approval", b"", b"r"),
    "denied": b.JoinResponse("node-j", b"n" * 16, "denied", "bad token \u00e9", b"", b"root"),
}


def _beacon(kind: MsgType, msg: b.Message) -> Case:
    return Case(
        (COMMON, msg), lambda: b.encode_body(COMMON, msg), lambda data: b.decode_body(kind, data)
    )


def _sealed_presence() -> Case:
    signer = NodeIdentity(b"\x22" * 32)
    body = b.encode_body(COMMON, PRESENCE)

    def opened(data: bytes) -> object:
        envelope = open_envelope(data)
        return envelope.msg_type, b.decode_body(envelope.msg_type, envelope.body)

    return Case(
        (MsgType.PRESENCE, (COMMON, PRESENCE)),
        lambda: seal(MsgType.PRESENCE, body, signer.sign),
        opened,
    )


def beacon_cases() -> dict[str, Case]:
    cases = {"beacon.presence": _beacon(MsgType.PRESENCE, PRESENCE)}
    for name, req in JOIN_REQUESTS.items():
        cases[f"beacon.join_request.{name}"] = _beacon(MsgType.JOIN_REQUEST, req)
    for name, resp in JOIN_RESPONSES.items():
        cases[f"beacon.join_response.{name}"] = _beacon(MsgType.JOIN_RESPONSE, resp)
    cases["beacon.sealed_presence"] = _sealed_presence()
    return cases


# -- gossip -------------------------------------------------------------------------

META = g.NodeMeta("d\u00e9v", "192.0.2.9:7000", 1 << 33, 8)
BROADCASTS: tuple[g.Broadcast, ...] = (
    g.Alive("node-e", 3, META),
    g.Suspect("node-b", 1, "node-e"),
    g.Dead("node-b", 2, "node-e"),
    g.Leave("node-e", 7),
    g.RingReport("node-e", 12, HASH),
    g.RingReport("node-f", 0, ""),
    g.Revoke(b"revoke:node-b"),
)
RECORDS = (
    g.MemberRecord("node-e", META, MemberState.ALIVE, 3, 12, HASH),
    g.MemberRecord("node-f", g.NodeMeta("f", "[::1]:7001"), MemberState.SUSPECT, 1),
    g.MemberRecord("node-g", META, MemberState.DEAD, 9),
    g.MemberRecord("node-h", META, MemberState.LEFT, 2**32 - 1, 2**64 - 1),
)
LINKS = (g.LinkFigure("node-b", 850, 12_500_000), g.LinkFigure("node-c", 0, 0))
BODIES: dict[str, g.Body] = {
    "ping": g.Ping(1, "node-a"),
    "ping_req": g.PingReq(2**32 - 1, "node-b"),
    "ack": g.Ack(3),
    "gossip": g.Gossip(),
    "push_pull": g.PushPull(False, RECORDS, (b"revoke:x", b"")),
    "push_pull_reply": g.PushPull(True, (), ()),
    "measures": g.Measures(3_000_000_000, 1 << 32, LINKS),
    "bulk_ping": g.BulkPing(41, bytes(300)),
    "bulk_ack": g.BulkAck(41),
}


def _gossip(msg: g.Message) -> Case:
    return Case(msg, lambda: g.encode(msg), g.decode)


def gossip_cases() -> dict[str, Case]:
    cases: dict[str, Case] = {}
    for name, body in BODIES.items():
        broadcasts = BROADCASTS if name in ("ping", "gossip", "push_pull") else ()
        cases[f"gossip.{name}"] = _gossip(g.Message(body, 4, HASH, broadcasts))
    cases["gossip.no_ring"] = _gossip(g.Message(g.Ack(0)))
    for i, cast in enumerate(BROADCASTS):
        cases[f"gossip.broadcast.{i}"] = Case(cast, partial(g.encode_broadcast, cast), _skip)
    return cases


def _skip(data: bytes) -> object:
    raise NotImplementedError  # a lone broadcast has no decoder of its own


# -- revocation list ----------------------------------------------------------------


def revocation_cases() -> dict[str, Case]:
    root = create_pool_root(b"\x01" * 32, "golden", NOW)
    entries = [
        revoke(root, "sha256:" + "c" * 64, NOW + 1, "lost laptop"),
        revoke(root, "sha256:" + "a" * 64, NOW, ""),
        revoke(root, "sha256:" + "b" * 64, NOW + 2.5, "r\u00e9voqu\u00e9"),
    ]
    full = RevocationList(root.anchor, entries)
    empty = RevocationList(root.anchor)

    def decode(data: bytes) -> object:
        return list(RevocationList.decode(data, root.anchor))

    return {
        "revocation.list": Case(list(full), full.encode, decode),
        "revocation.empty": Case([], empty.encode, decode),
    }


# -- relay frames -------------------------------------------------------------------

RELAY: dict[str, r.Message] = {
    "reserve": r.Reserve("node-a"),
    "reserved": r.Reserved("node-a"),
    "connect": r.Connect(7, "node-b"),
    "connected": r.Connected(7),
    "incoming": r.Incoming(2**32 - 1, "node-c"),
    "data": r.Data(7, b"\x17\x03\x03payload"),
    "close": r.Close(7, "bye"),
    "error": r.Error(r.ErrorCode(1), 7, "oops \u00e9"),
    "register": r.Register("laptop", ("192.0.2.7:7000", "[fd00::7]:7000"), 1 << 34, 8),
    "peers": r.Peers(
        (
            r.PeerEntry("node-b", "pi", ("192.0.2.8:7000",), 1 << 30, 4),
            r.PeerEntry("node-c", "desk", (), 0, 0),
        )
    ),
    "peers_empty": r.Peers(()),
}


def _frame(data: bytes) -> object:
    (message,) = framing.FrameParser().feed(data)
    return message


def relay_cases() -> dict[str, Case]:
    return {
        f"relay.{name}": Case(m, partial(framing.encode, m), _frame) for name, m in RELAY.items()
    }


def all_cases() -> dict[str, Case]:
    return {**beacon_cases(), **gossip_cases(), **revocation_cases(), **relay_cases()}


CASES = all_cases()


def _golden() -> dict[str, str]:
    loaded: dict[str, str] = json.loads(GOLDEN.read_text())
    return loaded


def test_every_case_has_recorded_bytes() -> None:
    assert sorted(_golden()) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_encoding_is_byte_identical(name: str) -> None:
    assert CASES[name].encode().hex() == _golden()[name]


@pytest.mark.parametrize("name", sorted(n for n in CASES if ".broadcast." not in n))
def test_recorded_bytes_decode_to_the_value(name: str) -> None:
    case = CASES[name]
    assert case.decode(bytes.fromhex(_golden()[name])) == case.value
