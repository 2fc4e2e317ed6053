"""The beacon envelope: versioned, signed, at most 1200 bytes.

Layout (network byte order)::

    magic "MB" (2) | version u8 = 1 | type u8 | body length u16 | body | signature (64)

The Ed25519 signature (pynacl) covers ``DOMAIN || header || body`` with
``DOMAIN = b"meshnet-beacon-v1\\x00"``, so a beacon signature can never be mistaken
for a signature made for another purpose (revocations, TLS). Who signed is named in
the body (see messages.py): a presence carries the sender's member certificate, a
join request the joiner's raw public key, a join response the pool root certificate.

``open_envelope`` never raises anything but ``DecodeError`` with a reason in
``too_large``, ``truncated``, ``garbage``, ``bad_version``, ``unknown_type``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

from reconciler.certs.identity import SIGNATURE_LEN
from reconciler.codec import DecodeError

MAGIC = b"MB"
VERSION = 1
DOMAIN = b"meshnet-beacon-v1\x00"
MAX_DATAGRAM = 1200
AMPLIFICATION = 3
MIN_JOIN_REQUEST = -(-MAX_DATAGRAM // AMPLIFICATION)
"""A join request is padded to this size, so no answer is more than 3 times its request."""
HEADER = struct.Struct("!2sBBH")


class MsgType(IntEnum):
    """Beacon message types."""

    PRESENCE = 1
    JOIN_REQUEST = 2
    JOIN_RESPONSE = 3


@dataclass(frozen=True)
class Envelope:
    """A parsed (not yet verified) envelope."""

    msg_type: MsgType
    body: bytes
    signature: bytes
    signed_bytes: bytes  # DOMAIN || header || body: what the signature covers


def _header(msg_type: MsgType, body_len: int) -> bytes:
    return HEADER.pack(MAGIC, VERSION, int(msg_type), body_len)


def seal(msg_type: MsgType, body: bytes, sign: Callable[[bytes], bytes]) -> bytes:
    """Frame and sign a body; ValueError if the datagram would exceed 1200 bytes."""
    size = HEADER.size + len(body) + SIGNATURE_LEN
    if size > MAX_DATAGRAM:
        raise ValueError(f"beacon of {size} bytes exceeds {MAX_DATAGRAM}")
    header = _header(msg_type, len(body))
    return header + body + sign(DOMAIN + header + body)


def open_envelope(data: bytes) -> Envelope:
    """Parse the framing of a datagram (the signature is checked later, by its signer)."""
    if len(data) > MAX_DATAGRAM:
        raise DecodeError("too_large", f"{len(data)} bytes")
    if len(data) < HEADER.size:
        raise DecodeError("truncated" if MAGIC.startswith(data[:2]) else "garbage")
    magic, version, type_code, body_len = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise DecodeError("garbage", "bad magic")
    if version != VERSION:
        raise DecodeError("bad_version", f"version {version}")
    try:
        msg_type = MsgType(type_code)
    except ValueError as exc:
        raise DecodeError("unknown_type", f"type {type_code}") from exc
    end = HEADER.size + body_len
    if len(data) < end + SIGNATURE_LEN:
        raise DecodeError("truncated", "datagram shorter than its header says")
    if len(data) > end + SIGNATURE_LEN:
        raise DecodeError("garbage", "trailing bytes")
    body = bytes(data[HEADER.size : end])
    return Envelope(msg_type, body, bytes(data[end:]), DOMAIN + bytes(data[:end]))
