"""Peer-link framing: frames survive any cut of the stream; garbage is refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.frames import Channel, FrameDecoder, FrameError, encode_frame


def test_round_trip_byte_at_a_time() -> None:
    frames = [
        (Channel.GOSSIP, b"hello"),
        (Channel.TENSOR, bytes(range(256)) * 10),
        (Channel.CONTROL, b"x"),
    ]
    stream = b"".join(encode_frame(c, p) for c, p in frames)
    decoder = FrameDecoder()
    out = []
    for i in range(len(stream)):
        out.extend(decoder.feed(stream[i : i + 1]))
    assert out == frames and decoder.pending == 0


@given(st.lists(st.binary(max_size=300), max_size=5), st.lists(st.integers(1, 50), max_size=20))
def test_any_chunking_gives_the_same_frames(payloads: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(encode_frame(Channel.GOSSIP, p) for p in payloads)
    decoder, out, pos = FrameDecoder(), [], 0
    for size in [*cuts, len(stream)]:
        out.extend(decoder.feed(stream[pos : pos + size]))
        pos += size
    assert [p for _, p in out] == payloads


def test_oversized_and_unknown_channel_are_refused() -> None:
    with pytest.raises(FrameError, match="outside"):
        FrameDecoder(max_frame=10).feed(b"\x00\x00\x01\x00\x01")
    with pytest.raises(FrameError, match="unknown channel"):
        FrameDecoder().feed(b"\x00\x00\x00\x02\x09x")
    with pytest.raises(FrameError):
        FrameDecoder().feed(b"\x00\x00\x00\x00\x01")
