"""Peer-link framing, sans-IO: `length (u32 BE) | channel (u8) | payload`.

`FrameDecoder.feed(data)` returns whole frames as they complete, however the stream was
cut; a length over its channel's limit or an unknown channel raises FrameError as soon
as the header arrives (the link is then closed: the peer is broken or hostile). Only
tensor frames may be large (64 MiB); gossip and job control frames are kept small
(1 MiB), so a peer cannot make us buffer big partial frames on control channels.
"""

from __future__ import annotations

import struct
from enum import IntEnum

HEADER = struct.Struct(">IB")
MAX_FRAME = 64 * 2**20


class Channel(IntEnum):
    """What a frame carries."""

    GOSSIP = 1
    TENSOR = 2
    CONTROL = 3


CONTROL_FRAME = 1 << 20
CHANNEL_LIMITS = {Channel.GOSSIP: CONTROL_FRAME, Channel.CONTROL: CONTROL_FRAME,
                  Channel.TENSOR: MAX_FRAME}  # fmt: skip


class FrameError(Exception):
    """The stream is not valid framing."""


def encode_frame(channel: Channel, payload: bytes) -> bytes:
    """One frame."""
    limit = CHANNEL_LIMITS[channel]
    if len(payload) + 1 > limit:
        raise ValueError(
            f"payload of {len(payload)} bytes exceeds the {limit}-byte {channel.name} frame limit"
        )
    return HEADER.pack(len(payload) + 1, channel) + payload


class FrameDecoder:
    """Reassembles frames from stream chunks."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[Channel, bytes]]:
        self._buffer += data
        frames = []
        while len(self._buffer) >= HEADER.size:
            length, channel = HEADER.unpack_from(self._buffer)
            if length < 1 or length > self.max_frame:
                raise FrameError(f"frame length {length} outside 1..{self.max_frame}")
            if channel not in Channel._value2member_map_:
                raise FrameError(f"unknown channel {channel}")
            limit = min(self.max_frame, CHANNEL_LIMITS[Channel(channel)])
            if length > limit:
                raise FrameError(f"{Channel(channel).name} frame of {length} bytes over {limit}")
            end = 4 + length
            if len(self._buffer) < end:
                break
            frames.append((Channel(channel), bytes(self._buffer[HEADER.size : end])))
            del self._buffer[:end]
        return frames

    @property
    def pending(self) -> int:
        """Bytes held waiting for the rest of a frame."""
        return len(self._buffer)
