"""Beacon message bodies and their deterministic binary encoding.

Every body starts with the same three fields, so checks common to all messages
(pool, freshness, replay) need no knowledge of the type::

    text pool_id | u64 seq | u64 timestamp (ms since the epoch)

then, per type (``text``/``blob`` are u16-length-prefixed, see reconciler/codec.py):

- PRESENCE: text node_id, text name, text host, u16 port, u64 memory_bytes,
  u16 cores, blob ring_hash (may be empty), blob member_cert_der.
- JOIN_REQUEST: blob joiner_pubkey (32), text node_id, text device_name,
  blob nonce (16), text root_fingerprint (may be empty), text token_id (may be
  empty), blob proof (32 or empty), blob current_cert_der (empty unless renewing),
  blob padding (zeros: the datagram is at least ``wire.MIN_JOIN_REQUEST`` bytes).
- JOIN_RESPONSE: text target_node_id, blob nonce, u8 status (1 approved,
  2 pending, 3 denied), text reason, blob cert_der (empty unless approved),
  blob root_cert_der.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.beacon.wire import HEADER, MIN_JOIN_REQUEST, MsgType
from reconciler.certs.admission import JoinStatusCode
from reconciler.certs.identity import PUBKEY_LEN, SIGNATURE_LEN
from reconciler.codec import GARBAGE, DecodeError, Reader, Writer

_MIN_JOIN_BODY = MIN_JOIN_REQUEST - HEADER.size - SIGNATURE_LEN

NONCE_LEN = 16
_STATUS_CODES: dict[JoinStatusCode, int] = {"approved": 1, "pending": 2, "denied": 3}
_STATUS_NAMES: dict[int, JoinStatusCode] = {v: k for k, v in _STATUS_CODES.items()}


@dataclass(frozen=True)
class Common:
    """Fields every beacon body starts with."""

    pool_id: str
    seq: int
    timestamp_ms: int

    @property
    def timestamp(self) -> float:
        return self.timestamp_ms / 1000


@dataclass(frozen=True)
class Presence:
    """'I am here': a member's periodic announcement."""

    node_id: str
    name: str
    host: str
    port: int
    memory_bytes: int
    cores: int
    ring_hash: bytes
    cert_der: bytes


@dataclass(frozen=True)
class JoinRequest:
    """A joiner asking for a certificate; signed by the joiner's own key."""

    joiner_pubkey: bytes
    node_id: str
    device_name: str
    nonce: bytes
    root_fingerprint: str = ""
    token_id: str = ""
    proof: bytes = b""
    current_cert_der: bytes = b""  # set when a member renews its certificate


@dataclass(frozen=True)
class JoinResponse:
    """The admin's answer; signed by the pool root key."""

    target_node_id: str
    nonce: bytes
    status: JoinStatusCode
    reason: str
    cert_der: bytes
    root_cert_der: bytes


Message = Presence | JoinRequest | JoinResponse
MESSAGE_TYPES: dict[type[Message], MsgType] = {
    Presence: MsgType.PRESENCE,
    JoinRequest: MsgType.JOIN_REQUEST,
    JoinResponse: MsgType.JOIN_RESPONSE,
}


def clip_utf8(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, on a character boundary."""
    return text.encode()[:limit].decode(errors="ignore")


def encode_body(common: Common, msg: Message) -> bytes:
    """The body bytes of ``msg`` preceded by the common fields."""
    out = Writer().text16(common.pool_id).u64(common.seq).u64(common.timestamp_ms)
    if isinstance(msg, Presence):
        out.text16(msg.node_id).text16(msg.name).text16(msg.host).u16(msg.port)
        out.u64(msg.memory_bytes).u16(msg.cores).blob16(msg.ring_hash).blob16(msg.cert_der)
    elif isinstance(msg, JoinRequest):
        out.blob16(msg.joiner_pubkey).text16(msg.node_id).text16(msg.device_name).blob16(msg.nonce)
        out.text16(msg.root_fingerprint).text16(msg.token_id).blob16(msg.proof)
        out.blob16(msg.current_cert_der)
        out.blob16(bytes(max(0, _MIN_JOIN_BODY - len(out.getvalue()) - 2)))
    else:
        out.text16(msg.target_node_id).blob16(msg.nonce).u8(_STATUS_CODES[msg.status])
        out.text16(msg.reason).blob16(msg.cert_der).blob16(msg.root_cert_der)
    return out.getvalue()


def decode_body(msg_type: MsgType, body: bytes) -> tuple[Common, Message]:
    """Parse a body; raises only DecodeError."""
    reader = Reader(body)
    common = Common(reader.text16(), reader.u64(), reader.u64())
    msg: Message
    if msg_type is MsgType.PRESENCE:
        msg = _read_presence(reader)
    elif msg_type is MsgType.JOIN_REQUEST:
        msg = _read_join_request(reader)
    else:
        msg = _read_join_response(reader)
    reader.end()
    return common, msg


def _read_presence(r: Reader) -> Presence:
    node_id, name, host, port = r.text16(), r.text16(), r.text16(), r.u16()
    return Presence(node_id, name, host, port, r.u64(), r.u16(), r.blob16(), r.blob16())


def _read_join_request(r: Reader) -> JoinRequest:
    pubkey, node_id, device_name = r.blob16(PUBKEY_LEN), r.text16(), r.text16()
    nonce, root_fp, token_id, proof = r.blob16(NONCE_LEN), r.text16(), r.text16(), r.blob16()
    if len(proof) not in (0, 32) or bool(token_id) != bool(proof):
        raise DecodeError(GARBAGE, "token id and 32-byte proof go together")
    current = r.blob16()
    r.blob16()  # padding
    return JoinRequest(pubkey, node_id, device_name, nonce, root_fp, token_id, proof, current)


def _read_join_response(r: Reader) -> JoinResponse:
    target, nonce, code = r.text16(), r.blob16(NONCE_LEN), r.u8()
    status = _STATUS_NAMES.get(code)
    if status is None:
        raise DecodeError(GARBAGE, f"unknown join status {code}")
    return JoinResponse(target, nonce, status, r.text16(), r.blob16(), r.blob16())
