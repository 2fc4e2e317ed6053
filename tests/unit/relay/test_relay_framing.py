"""Relay framing: round trips, byte-at-a-time parsing, bad frames, fuzzing."""

from __future__ import annotations

import random
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.relay.framing import (
    MAX_PAYLOAD,
    BadFrame,
    FrameParser,
    StreamBroken,
    encode,
)
from reconciler.relay.messages import (
    Close,
    Connect,
    Connected,
    Data,
    Error,
    ErrorCode,
    Incoming,
    Message,
    Reserve,
    Reserved,
)

SAMPLES: list[Message] = [
    Reserve("node-0123456789abcdef"),
    Reserved("node-0123456789abcdef"),
    Connect(5, "node-aaaaaaaaaaaaaaaa"),
    Connected(5),
    Incoming(0x8000_0001, "node-bbbbbbbbbbbbbbbb"),
    Data(5, b""),
    Data(0xFFFF_FFFE, b"\x00\xff" * 1000),
    Data(1, b"x" * MAX_PAYLOAD),
    Close(5, "done"),
    Close(5),
    Error(ErrorCode.QUEUE_FULL, 9, "queue of node-x full"),
    Error(ErrorCode.TOO_MANY_RESERVATIONS),
]


def test_every_message_round_trips_fed_whole() -> None:
    stream = b"".join(encode(m) for m in SAMPLES)
    assert FrameParser().feed(stream) == SAMPLES


def test_every_message_round_trips_fed_one_byte_at_a_time() -> None:
    stream = b"".join(encode(m) for m in SAMPLES)
    parser, got = FrameParser(), []
    for i in range(len(stream)):
        got += parser.feed(stream[i : i + 1])
        assert parser.pending < len(stream)
    assert got == SAMPLES
    assert parser.pending == 0


def test_random_cuts_give_the_same_messages() -> None:
    rng = random.Random(7)
    stream = b"".join(encode(m) for m in SAMPLES)
    for _ in range(50):
        parser, got, pos = FrameParser(), [], 0
        while pos < len(stream):
            step = rng.randint(1, 5000)
            got += parser.feed(stream[pos : pos + step])
            pos += step
        assert got == SAMPLES


def test_oversized_data_is_refused_by_the_encoder() -> None:
    try:
        encode(Data(1, b"x" * (MAX_PAYLOAD + 1)))
    except ValueError as err:
        assert "exceeds" in str(err)
    else:
        raise AssertionError("encoded an oversized frame")


def test_a_bad_body_is_dropped_and_the_stream_continues() -> None:
    bad_type = struct.pack(">IB", 2, 99) + b"z"
    bad_text = struct.pack(">IB", 3, 1) + b"\x00\x05"  # RESERVE with truncated text
    bad_code = encode(Error(ErrorCode.PROTOCOL)).replace(b"\x00\x01", b"\x03\xe7", 1)
    events = FrameParser().feed(bad_type + bad_text + bad_code + encode(Connected(3)))
    assert [type(e) for e in events] == [BadFrame, BadFrame, BadFrame, Connected]
    assert "type 99" in events[0].reason  # type: ignore[union-attr]


def test_an_impossible_length_breaks_the_stream_once() -> None:
    parser = FrameParser()
    events = parser.feed(struct.pack(">IB", 10_000_000, 6) + encode(Connected(1)))
    assert len(events) == 1 and isinstance(events[0], StreamBroken)
    assert parser.feed(encode(Connected(1))) == []
    assert FrameParser().feed(struct.pack(">IB", 0, 6)) == [
        StreamBroken("frame length 0 outside 1..65541")
    ]


messages = st.one_of(
    st.builds(Reserve, st.text(max_size=40)),
    st.builds(Reserved, st.text(max_size=40)),
    st.builds(Connect, st.integers(0, 2**32 - 1), st.text(max_size=40)),
    st.builds(Connected, st.integers(0, 2**32 - 1)),
    st.builds(Incoming, st.integers(0, 2**32 - 1), st.text(max_size=40)),
    st.builds(Data, st.integers(0, 2**32 - 1), st.binary(max_size=300)),
    st.builds(Close, st.integers(0, 2**32 - 1), st.text(max_size=40)),
    st.builds(Error, st.sampled_from(ErrorCode), st.integers(0, 2**32 - 1), st.text(max_size=40)),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(messages, max_size=8), st.lists(st.integers(1, 64), min_size=1, max_size=20))
def test_fuzz_any_messages_any_cuts(batch: list[Message], cuts: list[int]) -> None:
    stream = b"".join(encode(m) for m in batch)
    parser, got, pos, i = FrameParser(), [], 0, 0
    while pos < len(stream):
        step = cuts[i % len(cuts)]
        got += parser.feed(stream[pos : pos + step])
        pos, i = pos + step, i + 1
    assert got == batch


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_fuzz_garbage_never_raises(garbage: bytes) -> None:
    parser = FrameParser()
    for i in range(0, len(garbage), 7):
        for event in parser.feed(garbage[i : i + 7]):
            assert isinstance(event, (BadFrame, StreamBroken, *Message.__args__))
