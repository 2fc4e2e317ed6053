"""Fuzz targets: every decoder that reads bytes from the network or from files.

Each ``Target`` takes one input and returns quietly when the decoder either decoded
it or refused it with the module's documented error (or, for a protocol machine,
dropped it with an event and changed nothing). Any other exception, or a state
change after a refusal, escapes as an exception: a finding. Used by the property
tests (tests/unit/test_fuzz_decoders.py) and the long run (bench/fuzz.py).
"""

from __future__ import annotations

import contextlib
import functools
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NOW = 1_750_000_000.0
PEER = ("192.0.2.7", 42424)


@dataclass(frozen=True)
class Target:
    name: str
    run: Callable[[bytes], None]
    seeds: Callable[[], list[bytes]]


# -- beacon -------------------------------------------------------------------------


@functools.cache
def _beacon_world() -> tuple[object, list[bytes]]:
    from reconciler.beacon.config import Advert, BeaconConfig, Membership
    from reconciler.beacon.machine import BeaconProtocol
    from reconciler.beacon.messages import Common, JoinRequest, JoinResponse, Presence, encode_body
    from reconciler.beacon.wire import MsgType, seal
    from reconciler.certs.desk import AdminDesk
    from reconciler.certs.identity import NodeIdentity
    from reconciler.certs.member import sign_member_certificate, verify_member_certificate
    from reconciler.certs.root import create_pool_root

    root = create_pool_root(b"\x01" * 32, "fuzz", NOW)
    admin_id, member = NodeIdentity(b"\xad" * 32), NodeIdentity(b"\x22" * 32)
    admin_der = sign_member_certificate(root, admin_id.public_key, "admin", "admin", NOW)
    member_der = sign_member_certificate(root, member.public_key, "m", "member", NOW)
    info = verify_member_certificate(admin_der, root.anchor, NOW)
    config = BeaconConfig(root.pool_id, (("239.192.0.1", 42424),))
    machine = BeaconProtocol(
        config, admin_id, Advert("admin", "192.0.2.1", 7000, 1 << 30, 2), random.Random(1),
        membership=Membership(root.anchor, admin_der, info), admin=AdminDesk(root, "approve"),
    )  # fmt: skip
    common = Common(root.pool_id, 5, int(NOW * 1000))
    presence = Presence(member.node_id, "m", "192.0.2.7", 7000, 1 << 30, 2, b"", member_der)
    joiner = NodeIdentity(b"\x33" * 32)
    request = JoinRequest(joiner.public_key, joiner.node_id, "pi", b"n" * 16)
    response = JoinResponse(joiner.node_id, b"n" * 16, "denied", "no", b"", root.cert_der)
    seeds = [
        seal(MsgType.PRESENCE, encode_body(common, presence), member.sign),
        seal(MsgType.JOIN_REQUEST, encode_body(common, request), joiner.sign),
        seal(MsgType.JOIN_RESPONSE, encode_body(common, response), root.identity.sign),
    ]
    return machine, seeds


def beacon(data: bytes) -> None:
    from reconciler.beacon.events import DatagramDropped
    from reconciler.beacon.messages import decode_body
    from reconciler.beacon.wire import MsgType, open_envelope
    from reconciler.codec import DecodeError

    with contextlib.suppress(DecodeError):
        envelope = open_envelope(data)
        decode_body(envelope.msg_type, envelope.body)
    for kind in MsgType:  # the bodies, parsed without a signature in the way
        with contextlib.suppress(DecodeError):
            decode_body(kind, data)
    machine, _ = _beacon_world()
    before = _beacon_state(machine)
    machine.receive_datagram(data, PEER, NOW)  # type: ignore[attr-defined]
    events = list(iter(machine.next_event, None))  # type: ignore[attr-defined]
    out = machine.datagrams_to_send(NOW)  # type: ignore[attr-defined]
    if all(isinstance(e, DatagramDropped) for e in events):
        assert not out and _beacon_state(machine) == before, "a dropped datagram changed state"


def _beacon_state(machine: object) -> tuple[int, int, int]:
    m = machine
    return (len(m._members_guard), len(m._joiners_guard), len(m.admin.pending))  # type: ignore[attr-defined]


# -- gossip -------------------------------------------------------------------------

_EVIL = "node-" + "e" * 16


def _gossip_seeds() -> list[bytes]:
    from reconciler.gossip import messages as g
    from reconciler.gossip.states import MemberState

    meta = g.NodeMeta("dev", "192.0.2.9:7000", 1 << 30, 4)
    b = "node-" + "b" * 16
    casts = (
        g.Alive(_EVIL, 3, meta),
        g.Suspect(b, 1, _EVIL),
        g.Dead(b, 2, _EVIL),
        g.Leave(_EVIL, 7),
        g.RingReport(_EVIL, 12, "ab" * 32),
        g.Revoke(b"revoke:" + b.encode()),
    )
    records = (g.MemberRecord(_EVIL, meta, MemberState.ALIVE, 3, 12, "ab" * 32),)
    bodies: list[g.Body] = [
        g.Ping(1, "node-" + "a" * 16),
        g.PingReq(2, b),
        g.Ack(3),
        g.Gossip(),
        g.PushPull(False, records, (b"revoke:x",)),
        g.Measures(3_000_000_000, 1 << 32, (g.LinkFigure(b, 850, 12_500_000),)),
        g.BulkPing(9, bytes(40)),
        g.BulkAck(9),
    ]
    return [g.encode(g.Message(body, 4, "ab" * 32, casts)) for body in bodies]


def _gossip_machine() -> object:
    from reconciler.gossip.config import GossipConfig
    from reconciler.gossip.machine import GossipProtocol
    from reconciler.gossip.messages import NodeMeta

    def verify(entry: bytes) -> str | None:
        return entry[7:].decode() if entry.startswith(b"revoke:node-") else None

    meta = NodeMeta("a", "192.0.2.1:7000", 1 << 30, 4)
    a = GossipProtocol("node-" + "a" * 16, meta, GossipConfig(), random.Random(1), 0.0, verify)
    a.add_seed(_EVIL, meta)
    a.messages_to_send()
    return a


def gossip(data: bytes) -> None:
    from reconciler.gossip.config import GossipConfig
    from reconciler.gossip.events import MessageDropped
    from reconciler.gossip.messages import GossipDecodeError, decode

    try:
        decode(data)
        decoded = True
    except GossipDecodeError:
        decoded = False
    machine = _gossip_machine()
    table = machine.members()  # type: ignore[attr-defined]
    while machine.next_event() is not None:  # type: ignore[attr-defined]
        pass
    machine.receive_message(_EVIL, data, 1.0)  # type: ignore[attr-defined]
    out = machine.messages_to_send()  # type: ignore[attr-defined]
    events = list(iter(machine.next_event, None))  # type: ignore[attr-defined]
    if not decoded:
        assert [type(e) for e in events] == [MessageDropped] and not out
        assert machine.members() == table, "a refused message changed the member table"  # type: ignore[attr-defined]
    assert len(machine.members()) <= GossipConfig().max_members  # type: ignore[attr-defined]


# -- relay frames -------------------------------------------------------------------


def _relay_seeds() -> list[bytes]:
    from reconciler.relay import framing
    from reconciler.relay import messages as r

    msgs: list[r.Message] = [
        r.Reserve("node-a"),
        r.Reserved("node-a"),
        r.Connect(7, "node-b"),
        r.Connected(7),
        r.Incoming(7, "node-c"),
        r.Data(7, b"payload"),
        r.Close(7, "bye"),
        r.Error(r.ErrorCode(1), 7, "oops"),
        r.Register("laptop", ("192.0.2.7:7000", "[fd00::7]:7000"), 1 << 30, 4),
        r.Peers((r.PeerEntry("node-b", "pi", ("192.0.2.8:7000",), 1 << 30, 4),)),
    ]
    return [framing.encode(m) for m in msgs]


def relay(data: bytes) -> None:
    from reconciler.codec import DecodeError
    from reconciler.relay.framing import FrameParser, decode_body

    whole = FrameParser().feed(data)
    chunked = FrameParser()
    events = [e for i in range(0, len(data), 3) for e in chunked.feed(data[i : i + 3])]
    assert events == whole, "framing depends on how the stream is cut"
    if data:
        with contextlib.suppress(DecodeError):
            decode_body(data[0], data[1:])


# -- revocation lists ---------------------------------------------------------------


@functools.cache
def _revocation_world() -> tuple[object, list[bytes]]:
    from reconciler.certs.revocation import RevocationList, revoke
    from reconciler.certs.root import create_pool_root

    root = create_pool_root(b"\x01" * 32, "fuzz", NOW)
    entries = [revoke(root, f"sha256:{i:064x}", NOW + i, "lost") for i in range(2)]
    seeds = [RevocationList(root.anchor, entries).encode(), RevocationList(root.anchor).encode()]
    return root.anchor, seeds


def revocation(data: bytes) -> None:
    from reconciler.certs.errors import RevocationError
    from reconciler.certs.revocation import RevocationList

    anchor, _ = _revocation_world()
    with contextlib.suppress(RevocationError):
        listed = RevocationList.decode(data, anchor)  # type: ignore[arg-type]
        again = RevocationList.decode(listed.encode(), anchor)  # type: ignore[arg-type]
        assert list(again) == list(listed), "a decoded list does not round-trip"


# -- tensor frames ------------------------------------------------------------------


def _tensor_seeds() -> list[bytes]:
    from reconciler.jobs.wire import Op, encode

    return [
        encode(Op.ALL_REDUCE_SUM, 3, np.ones((2, 3), dtype=np.float32)),
        encode(Op.ALL_GATHER, 1, np.arange(4, dtype=np.int64)),
        encode(Op.BROADCAST, 0, np.zeros((), dtype=np.float16)),
    ]


def tensor(data: bytes) -> None:
    from reconciler.inference.errors import WireError
    from reconciler.jobs.wire import FrameDecoder, decode

    with contextlib.suppress(WireError):
        frame = decode(data)
        assert frame.array.nbytes <= len(data)
    decoder = FrameDecoder()
    with contextlib.suppress(WireError):
        for i in range(0, len(data), 5):
            decoder.feed(data[i : i + 5])


# -- job control messages -----------------------------------------------------------


def _job_seeds() -> list[bytes]:
    from dataclasses import replace

    from reconciler.inference.sampling import SamplingParams
    from reconciler.jobs import messages as j

    offer = j.JobOffer(
        "default/hello", 2, "demo", (1, 31, 7), SamplingParams(max_tokens=9, stop=("\n",)),
        4, "ab" * 32, 8192, (j.Participant("node-a", 0, 5000), j.Participant("node-b", 5000, 8192)),
    )  # fmt: skip
    stats = j.MemberStats("node-b", 5000, 8192, 12.5, 3.25, 4096, 62, 62, 100.0, 1 << 30, 4.0, 9)
    speculative = replace(offer, sampling=SamplingParams(draft_tokens=8), wire="q80")
    msgs: list[j.Message] = [
        offer,
        speculative,
        j.JobReady("j", 1, "node-b", 12.0, 1 << 33),
        j.JobLoadFailed("j", 1, "node-b", "ModelNotFound", "no such file"),
        j.LoadProgress("j", 1, "node-b", 0.5),
        j.JobStart("j", 1),
        j.JobAbort("j", 1, "MemberLost", "node-c was lost"),
        j.JobDone("j", 1, stats),
    ]
    return [j.encode(m) for m in msgs]


def jobs(data: bytes) -> None:
    from reconciler.jobs.errors import JobProtocolError
    from reconciler.jobs.messages import decode, encode

    try:
        message = decode(data)
    except JobProtocolError:
        return
    assert decode(encode(message)) == message, "a decoded message does not round-trip"


# -- join requests over HTTP --------------------------------------------------------


def _join_seeds() -> list[bytes]:
    body = {
        "poolId": "pool-" + "0" * 16,
        "publicKey": "ab" * 32,
        "deviceName": "pi",
        "tokenId": "abcdef",
        "proof": "cd" * 32,
        "nonce": "ef" * 16,
        "timestamp": NOW,
        "signature": "01" * 64,
    }
    import json

    return [json.dumps(body).encode(), json.dumps({**body, "rootFingerprint": "sha256:x"}).encode()]


def join(data: bytes) -> None:
    from pydantic import ValidationError

    from reconciler.certs.tokens import signed_message
    from reconciler.controlplane.joining import JoinRequest

    try:
        body = JoinRequest.model_validate_json(data)
    except ValidationError:
        return
    pubkey, nonce = bytes.fromhex(body.public_key), bytes.fromhex(body.nonce)
    signed_message(body.pool_id, pubkey, nonce, body.timestamp, body.device_name)
    bytes.fromhex(body.proof), bytes.fromhex(body.signature)


# -- manifests ----------------------------------------------------------------------


def _manifest_seeds() -> list[bytes]:
    return [p.read_bytes() for p in sorted(EXAMPLES.glob("*/*.yaml"))]


def manifest(data: bytes) -> None:
    from manifests.errors import ManifestError
    from manifests.loader import load_text

    try:
        text = data.decode("utf-8")  # load_file turns a decode error into ManifestError
    except UnicodeDecodeError:
        return
    with contextlib.suppress(ManifestError):
        load_text(text, "fuzz.yaml")


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("beacon", beacon, lambda: _beacon_world()[1]),
        Target("gossip", gossip, _gossip_seeds),
        Target("relay", relay, _relay_seeds),
        Target("revocation", revocation, lambda: _revocation_world()[1]),
        Target("tensor", tensor, _tensor_seeds),
        Target("jobs", jobs, _job_seeds),
        Target("join", join, _join_seeds),
        Target("manifest", manifest, _manifest_seeds),
    )
}


def mutate(seed: bytes, rng: random.Random, seeds: list[bytes]) -> bytes:
    """One random structural mutation of ``seed`` (flip, set, insert, cut, splice)."""
    data = bytearray(seed)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        pos = rng.randrange(len(data) + 1)
        if op == 0 and data:
            data[pos % len(data)] ^= 1 << rng.randrange(8)
        elif op == 1 and data:
            data[pos % len(data)] = rng.choice((0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)))
        elif op == 2:
            data[pos:pos] = rng.randbytes(rng.randint(1, 8))
        elif op == 3:
            del data[pos : pos + rng.randint(1, 16)]
        elif op == 4:
            other = rng.choice(seeds)
            cut = rng.randrange(len(other) + 1)
            data[pos:] = other[cut:]
        else:
            width = rng.choice((2, 4, 8))
            top = 2 ** (8 * width)
            value = rng.choice((0, 1, top // 2, top - 1, rng.randrange(top)))
            data[pos : pos + width] = value.to_bytes(width, rng.choice(("big", "little")))
    return bytes(data)
