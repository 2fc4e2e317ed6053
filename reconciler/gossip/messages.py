"""Gossip messages and their versioned binary encoding.

Wire format v1 (all integers big-endian; ``str`` = u16 length + UTF-8;
``blob`` = u32 length + bytes; ``hash`` = u8 flag, then 32 raw bytes when flag is 1)::

    message   := "MG" u8 version(=1) u8 type  u64 ring_epoch  hash ring_hash
                 body  u16 n  broadcast*n
    PING      := u32 seq  str target            (type 1)
    PING_REQ  := u32 seq  str target            (type 2)
    ACK       := u32 seq                        (type 3)
    GOSSIP    := (empty)                        (type 4, carries broadcasts only)
    PUSH_PULL := u8 is_reply  u16 n  record*n  u16 m  blob*m   (type 5)
    MEASURES, BULK_PING, BULK_ACK (types 6, 7, 8; optional): ``measurewire.py``
    record    := str node_id  meta  u8 state  u32 incarnation  u64 ring_epoch  hash
    meta      := str name  str address(host:port)  u64 memory_bytes  u16 cores
    broadcast := u8 kind, then
                 ALIVE(1): str node_id  u32 inc  meta
                 SUSPECT(2) / DEAD(3): str node_id  u32 inc  str from
                 LEAVE(4): str node_id  u32 inc
                 RING(5): str node_id  u64 epoch  hash
                 REVOKE(6): blob entry (opaque, checked by the pool's verifier)

Every message carries the sender's ring epoch and hash in its header. ``decode``
raises only ``GossipDecodeError`` (the codec's ``DecodeError``); trailing bytes
are an error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from reconciler.codec import GARBAGE, DecodeError, Reader, Writer
from reconciler.gossip.measurewire import (
    BulkAck,
    BulkPing,
    LinkFigure,
    Measures,
    read_bulk_ping,
    read_measures,
    write_bulk_ping,
    write_measures,
)
from reconciler.gossip.states import MemberState

MAGIC = b"MG"
VERSION = 1
HASH_BYTES = 32
MAX_MEMBERS = 4096
MAX_BROADCASTS = 4096
MAX_REVOCATIONS = 4096

GossipDecodeError = DecodeError
"""The name gossip callers catch: the one codec's error (``reconciler/codec.py``)."""

__all__ = [
    "Ack",
    "Alive",
    "Broadcast",
    "BulkAck",
    "BulkPing",
    "Dead",
    "GossipDecodeError",
    "Leave",
    "LinkFigure",
    "Measures",
    "MemberRecord",
    "Message",
    "NodeMeta",
    "Ping",
    "PingReq",
    "PushPull",
    "Revoke",
    "RingReport",
    "Suspect",
    "decode",
    "encode",
    "encode_broadcast",
]


@dataclass(frozen=True, slots=True)
class NodeMeta:
    """What a node tells the pool about itself."""

    name: str
    address: str
    memory_bytes: int = 0
    cores: int = 0


@dataclass(frozen=True, slots=True)
class Alive:
    node_id: str
    incarnation: int
    meta: NodeMeta


@dataclass(frozen=True, slots=True)
class Suspect:
    node_id: str
    incarnation: int
    sender: str


@dataclass(frozen=True, slots=True)
class Dead:
    node_id: str
    incarnation: int
    sender: str


@dataclass(frozen=True, slots=True)
class Leave:
    node_id: str
    incarnation: int


@dataclass(frozen=True, slots=True)
class RingReport:
    node_id: str
    epoch: int
    ring_hash: str


@dataclass(frozen=True, slots=True)
class Revoke:
    entry: bytes


Broadcast = Alive | Suspect | Dead | Leave | RingReport | Revoke


@dataclass(frozen=True, slots=True)
class Ping:
    seq: int
    target: str


@dataclass(frozen=True, slots=True)
class PingReq:
    seq: int
    target: str


@dataclass(frozen=True, slots=True)
class Ack:
    seq: int


@dataclass(frozen=True, slots=True)
class Gossip:
    """A message that only carries piggybacked broadcasts."""


@dataclass(frozen=True, slots=True)
class MemberRecord:
    node_id: str
    meta: NodeMeta
    state: MemberState
    incarnation: int
    ring_epoch: int = 0
    ring_hash: str = ""


@dataclass(frozen=True, slots=True)
class PushPull:
    is_reply: bool
    members: tuple[MemberRecord, ...]
    revocations: tuple[bytes, ...] = ()


Body = Ping | PingReq | Ack | Gossip | PushPull | Measures | BulkPing | BulkAck


@dataclass(frozen=True, slots=True)
class Message:
    """One gossip message: a body, the sender's ring report and broadcasts."""

    body: Body
    ring_epoch: int = 0
    ring_hash: str = ""
    broadcasts: tuple[Broadcast, ...] = ()


_STATE_CODES = {
    MemberState.ALIVE: 0,
    MemberState.SUSPECT: 1,
    MemberState.DEAD: 2,
    MemberState.LEFT: 3,
}
_STATES = {code: state for state, code in _STATE_CODES.items()}
_BROADCAST_KINDS: dict[type, int] = {
    Alive: 1,
    Suspect: 2,
    Dead: 3,
    Leave: 4,
    RingReport: 5,
    Revoke: 6,
}


# -- encoding ---------------------------------------------------------------


def _w_hash(w: Writer, value: str) -> None:
    if not value:
        w.u8(0)
        return
    raw = bytes.fromhex(value)
    if len(raw) != HASH_BYTES:
        raise ValueError("ring hash must be 32 bytes of hex")
    w.u8(1)
    w.raw(raw)


def _w_meta(w: Writer, meta: NodeMeta) -> None:
    w.text16(meta.name)
    w.text16(meta.address)
    w.u64(meta.memory_bytes)
    w.u16(meta.cores)


def _w_broadcast(w: Writer, b: Broadcast) -> None:
    w.u8(_BROADCAST_KINDS[type(b)])
    match b:
        case Alive(node_id, inc, meta):
            w.text16(node_id)
            w.u32(inc)
            _w_meta(w, meta)
        case Suspect(node_id, inc, sender) | Dead(node_id, inc, sender):
            w.text16(node_id)
            w.u32(inc)
            w.text16(sender)
        case Leave(node_id, inc):
            w.text16(node_id)
            w.u32(inc)
        case RingReport(node_id, epoch, ring_hash):
            w.text16(node_id)
            w.u64(epoch)
            _w_hash(w, ring_hash)
        case Revoke(entry):
            w.blob32(entry)


def _w_record(w: Writer, r: MemberRecord) -> None:
    w.text16(r.node_id)
    _w_meta(w, r.meta)
    w.u8(_STATE_CODES[r.state])
    w.u32(r.incarnation)
    w.u64(r.ring_epoch)
    _w_hash(w, r.ring_hash)


def _w_body(w: Writer, body: Body) -> None:
    match body:
        case Ping(seq, target):
            w.u32(seq)
            w.text16(target)
        case PingReq(seq, target):
            w.u32(seq)
            w.text16(target)
        case Ack(seq):
            w.u32(seq)
        case Gossip():
            pass
        case PushPull(is_reply, members, revocations):
            w.u8(int(is_reply))
            w.u16(len(members))
            for record in members:
                _w_record(w, record)
            w.u16(len(revocations))
            for entry in revocations:
                w.blob32(entry)
        case Measures():
            write_measures(w, body)
        case BulkPing():
            write_bulk_ping(w, body)
        case BulkAck(seq):
            w.u32(seq)


_BODY_TYPES: dict[type, int] = {
    Ping: 1, PingReq: 2, Ack: 3, Gossip: 4, PushPull: 5, Measures: 6, BulkPing: 7, BulkAck: 8,
}  # fmt: skip


def encode_broadcast(b: Broadcast) -> bytes:
    """The encoding of one broadcast (used to size piggyback budgets)."""
    w = Writer()
    _w_broadcast(w, b)
    return w.getvalue()


def encode(msg: Message) -> bytes:
    """Encode a message; raises ValueError only for local misuse (bad hash hex)."""
    w = Writer()
    w.raw(MAGIC)
    w.u8(VERSION)
    w.u8(_BODY_TYPES[type(msg.body)])
    w.u64(msg.ring_epoch)
    _w_hash(w, msg.ring_hash)
    _w_body(w, msg.body)
    w.u16(len(msg.broadcasts))
    for b in msg.broadcasts:
        _w_broadcast(w, b)
    return w.getvalue()


# -- decoding ---------------------------------------------------------------


def _id(r: Reader) -> str:
    """A node id: a non-empty string."""
    return r.text16(empty=False)


def _r_hash(r: Reader) -> str:
    flag = r.u8()
    if flag == 0:
        return ""
    if flag != 1:
        raise DecodeError(GARBAGE, f"bad hash flag {flag}")
    return r.fixed(HASH_BYTES).hex()


def _r_meta(r: Reader) -> NodeMeta:
    return NodeMeta(name=r.text16(), address=r.text16(), memory_bytes=r.u64(), cores=r.u16())


def _r_state(r: Reader) -> MemberState:
    code = r.u8()
    if code not in _STATES:
        raise DecodeError(GARBAGE, f"unknown member state {code}")
    return _STATES[code]


def _r_alive(r: Reader) -> Broadcast:
    return Alive(_id(r), r.u32(), _r_meta(r))


def _r_suspect(r: Reader) -> Broadcast:
    return Suspect(_id(r), r.u32(), _id(r))


def _r_dead(r: Reader) -> Broadcast:
    return Dead(_id(r), r.u32(), _id(r))


def _r_leave(r: Reader) -> Broadcast:
    return Leave(_id(r), r.u32())


def _r_ring(r: Reader) -> Broadcast:
    return RingReport(_id(r), r.u64(), _r_hash(r))


def _r_revoke(r: Reader) -> Broadcast:
    return Revoke(r.blob32())


_BROADCAST_READERS: dict[int, Callable[[Reader], Broadcast]] = {
    1: _r_alive,
    2: _r_suspect,
    3: _r_dead,
    4: _r_leave,
    5: _r_ring,
    6: _r_revoke,
}


def _r_broadcast(r: Reader) -> Broadcast:
    kind = r.u8()
    reader = _BROADCAST_READERS.get(kind)
    if reader is None:
        raise DecodeError(GARBAGE, f"unknown broadcast kind {kind}")
    return reader(r)


def _r_record(r: Reader) -> MemberRecord:
    return MemberRecord(
        node_id=_id(r),
        meta=_r_meta(r),
        state=_r_state(r),
        incarnation=r.u32(),
        ring_epoch=r.u64(),
        ring_hash=_r_hash(r),
    )


def _r_push_pull(r: Reader) -> Body:
    flag = r.u8()
    if flag > 1:
        raise DecodeError(GARBAGE, f"bad reply flag {flag}")
    members = tuple(_r_record(r) for _ in range(r.count16(MAX_MEMBERS, "members")))
    revocations = tuple(r.blob32() for _ in range(r.count16(MAX_REVOCATIONS, "revocations")))
    return PushPull(bool(flag), members, revocations)


_BODY_READERS: dict[int, Callable[[Reader], Body]] = {
    1: lambda r: Ping(r.u32(), _id(r)),
    2: lambda r: PingReq(r.u32(), _id(r)),
    3: lambda r: Ack(r.u32()),
    4: lambda r: Gossip(),
    5: _r_push_pull,
    6: read_measures,
    7: read_bulk_ping,
    8: lambda r: BulkAck(r.u32()),
}


def decode(data: bytes) -> Message:
    """Decode one message; any malformed input raises ``GossipDecodeError``."""
    r = Reader(data)
    if r.fixed(2) != MAGIC:
        raise DecodeError(GARBAGE, "bad magic")
    version = r.u8()
    if version != VERSION:
        raise DecodeError(GARBAGE, f"unsupported version {version}")
    body_reader = _BODY_READERS.get(r.u8())
    if body_reader is None:
        raise DecodeError(GARBAGE, "unknown message type")
    epoch = r.u64()
    ring_hash = _r_hash(r)
    body = body_reader(r)
    broadcasts = tuple(_r_broadcast(r) for _ in range(r.count16(MAX_BROADCASTS, "broadcasts")))
    r.end()
    return Message(body, epoch, ring_hash, broadcasts)
