"""Relay framing, sans-IO: ``length (u32 BE) | type (u8) | body``; length counts type+body.

Bodies (``text`` = u16 length + UTF-8, ``cid`` = u32 BE circuit ID)::

    RESERVE    text node_id            RESERVED   text node_id
    CONNECT    cid  text target        CONNECTED  cid
    INCOMING   cid  text source        DATA       cid  payload (rest of the frame)
    CLOSE      cid  text reason        ERROR      u16 code  cid  text message
    REGISTER   entry fields (rendezvous.py)   PEERS  u16 count, entries

``FrameParser.feed(data)`` returns messages as they complete, however the stream is
cut. A frame whose body does not decode is dropped and reported as ``BadFrame``; a
length outside the limit cannot be resynchronised, so the parser reports
``StreamBroken`` once and ignores everything after it. Nothing is raised.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from reconciler.codec import GARBAGE, TRUNCATED, DecodeError, Reader, Writer
from reconciler.relay import rendezvous
from reconciler.relay.messages import (
    Close,
    Connect,
    Connected,
    Data,
    Error,
    ErrorCode,
    FrameType,
    Incoming,
    Message,
    Peers,
    Register,
    Reserve,
    Reserved,
)

HEADER = struct.Struct(">IB")
CID = struct.Struct(">I")
MAX_PAYLOAD = 64 * 1024
MAX_FRAME = MAX_PAYLOAD + 1 + CID.size


@dataclass(frozen=True)
class BadFrame:
    """A whole frame that did not decode (dropped)."""

    reason: str


@dataclass(frozen=True)
class StreamBroken:
    """The stream cannot be framed any more (length out of range)."""

    reason: str


ParseEvent = Message | BadFrame | StreamBroken


def encode(message: Message) -> bytes:
    """One frame; ValueError for a DATA payload over MAX_PAYLOAD."""
    kind, body = _body(message)
    return HEADER.pack(len(body) + 1, kind) + body


def _body(m: Message) -> tuple[FrameType, bytes]:
    if isinstance(m, Data):
        if len(m.payload) > MAX_PAYLOAD:
            raise ValueError(f"DATA payload of {len(m.payload)} bytes exceeds {MAX_PAYLOAD}")
        return FrameType.DATA, CID.pack(m.circuit_id) + m.payload
    w = Writer()
    if isinstance(m, Reserve | Reserved):
        kind = FrameType.RESERVE if isinstance(m, Reserve) else FrameType.RESERVED
        return kind, w.text16(m.node_id).getvalue()
    if isinstance(m, Connect):
        return FrameType.CONNECT, w.u32(m.circuit_id).text16(m.target).getvalue()
    if isinstance(m, Connected):
        return FrameType.CONNECTED, CID.pack(m.circuit_id)
    if isinstance(m, Incoming):
        return FrameType.INCOMING, w.u32(m.circuit_id).text16(m.source).getvalue()
    if isinstance(m, Close):
        return FrameType.CLOSE, w.u32(m.circuit_id).text16(m.reason[:1000]).getvalue()
    if isinstance(m, Register | Peers):
        return rendezvous.encode_body(m)
    body = w.u16(m.code).u32(m.circuit_id).text16(m.message[:1000]).getvalue()
    return FrameType.ERROR, body


def decode_body(kind: int, body: bytes) -> Message:
    """The message of one frame; DecodeError if it is not one."""
    if kind == FrameType.DATA:
        if len(body) < CID.size:
            raise DecodeError(TRUNCATED, "DATA without a circuit ID")
        return Data(CID.unpack_from(body)[0], body[CID.size :])
    r = Reader(body)
    message = _decode_fields(kind, r)
    r.end()
    return message


def _decode_fields(kind: int, r: Reader) -> Message:
    if kind == FrameType.RESERVE:
        return Reserve(r.text16())
    if kind == FrameType.RESERVED:
        return Reserved(r.text16())
    if kind == FrameType.CONNECT:
        return Connect(r.u32(), r.text16())
    if kind == FrameType.CONNECTED:
        return Connected(r.u32())
    if kind == FrameType.INCOMING:
        return Incoming(r.u32(), r.text16())
    if kind == FrameType.CLOSE:
        return Close(r.u32(), r.text16())
    if kind == FrameType.ERROR:
        code = r.u16()
        if code not in ErrorCode._value2member_map_:
            raise DecodeError(GARBAGE, f"unknown error code {code}")
        return Error(ErrorCode(code), r.u32(), r.text16())
    if kind in (FrameType.REGISTER, FrameType.PEERS):
        return rendezvous.decode_fields(kind, r)
    raise DecodeError(GARBAGE, f"unknown frame type {kind}")


def _kind_name(kind: int) -> str:
    return FrameType(kind).name if kind in FrameType._value2member_map_ else f"type {kind}"


class FrameParser:
    """Reassembles relay frames from stream chunks."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buffer = bytearray()
        self.broken = False

    def feed(self, data: bytes) -> list[ParseEvent]:
        if self.broken:
            return []
        self._buffer += data
        events: list[ParseEvent] = []
        while len(self._buffer) >= HEADER.size:
            length, kind = HEADER.unpack_from(self._buffer)
            if length < 1 or length > self.max_frame:
                self.broken = True
                self._buffer.clear()
                events.append(StreamBroken(f"frame length {length} outside 1..{self.max_frame}"))
                break
            end = 4 + length
            if len(self._buffer) < end:
                break
            body = bytes(self._buffer[HEADER.size : end])
            del self._buffer[:end]
            try:
                events.append(decode_body(kind, body))
            except DecodeError as err:
                events.append(BadFrame(f"{_kind_name(kind)}: {err}"))
        return events

    @property
    def pending(self) -> int:
        """Bytes held waiting for the rest of a frame."""
        return len(self._buffer)
