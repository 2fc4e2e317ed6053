"""RelayCore without sockets: reservations, circuits, pools kept apart, limits, timers."""

from __future__ import annotations

from reconciler.relay.core import Drop, Output, RelayCore, RelayLimits, Send
from reconciler.relay.framing import FrameParser, encode
from reconciler.relay.messages import (
    NO_CIRCUIT,
    RELAY_CIRCUIT_BIT,
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

A, B, C, X = 1, 2, 3, 9  # clients; X is in another pool


def _core(**limits: float) -> RelayCore:
    core = RelayCore(RelayLimits(**limits))  # type: ignore[arg-type]
    core.connect(A, "node-a", "pool-1")
    core.connect(B, "node-b", "pool-1")
    core.connect(C, "node-c", "pool-1")
    core.connect(X, "node-x", "pool-2")
    return core


def _msgs(outputs: list[Output]) -> list[tuple[int, Message]]:
    found = []
    for out in outputs:
        assert isinstance(out, Send)
        for event in FrameParser().feed(out.data):
            assert not hasattr(event, "reason") or isinstance(event, Close | Error)
            found.append((out.client, event))
    return found


def _feed(
    core: RelayCore, client: int, message: Message, now: float = 0.0
) -> list[tuple[int, Message]]:
    return _msgs(core.receive(client, encode(message), now))


def _open(core: RelayCore) -> int:
    assert _feed(core, B, Reserve("node-b")) == [(B, Reserved("node-b"))]
    out = _feed(core, A, Connect(4, "node-b"))
    assert out == [(B, Incoming(RELAY_CIRCUIT_BIT, "node-a")), (A, Connected(4))]
    return RELAY_CIRCUIT_BIT


def test_a_circuit_forwards_both_ways_and_closes() -> None:
    core = _core()
    b_cid = _open(core)
    assert _feed(core, A, Data(4, b"hello")) == [(B, Data(b_cid, b"hello"))]
    assert _feed(core, B, Data(b_cid, b"hi")) == [(A, Data(4, b"hi"))]
    assert _feed(core, B, Close(b_cid, "bye")) == [(A, Close(4, "bye"))]
    assert _feed(core, A, Data(4, b"late")) == []
    assert core.counters["data_unknown_circuit"] == 1
    assert core.circuit_count() == 0


def test_reservation_must_name_the_certificate_node() -> None:
    core = _core()
    [(client, error)] = _feed(core, A, Reserve("node-b"))
    assert client == A and isinstance(error, Error) and error.code is ErrorCode.BAD_IDENTITY
    assert core.reservation_count() == 0


def test_other_pools_and_unreserved_nodes_are_unknown_targets() -> None:
    core = _core()
    _feed(core, X, Reserve("node-x"))
    for target in ("node-x", "node-c", "node-a"):
        [(_, error)] = _feed(core, A, Connect(1, target))
        assert isinstance(error, Error) and error.code is ErrorCode.UNKNOWN_TARGET
        assert error.circuit_id == 1


def test_reservation_limit() -> None:
    core = _core(max_reservations=1)
    _feed(core, B, Reserve("node-b"))
    assert _feed(core, B, Reserve("node-b")) == [(B, Reserved("node-b"))]  # renewing is fine
    [(_, error)] = _feed(core, C, Reserve("node-c"))
    assert isinstance(error, Error) and error.code is ErrorCode.TOO_MANY_RESERVATIONS


def test_circuit_limit_counts_both_ends() -> None:
    core = _core(max_circuits_per_member=1)
    _open(core)
    [(_, mine)] = _feed(core, A, Connect(5, "node-b"))
    assert isinstance(mine, Error) and mine.code is ErrorCode.TOO_MANY_CIRCUITS
    [(_, theirs)] = _feed(core, C, Connect(1, "node-b"))
    assert isinstance(theirs, Error) and theirs.code is ErrorCode.TOO_MANY_CIRCUITS
    assert "node-b" in theirs.message


def test_client_circuit_ids_are_checked() -> None:
    core = _core()
    _open(core)
    [(_, dup)] = _feed(core, A, Connect(4, "node-b"))
    assert isinstance(dup, Error) and dup.code is ErrorCode.DUPLICATE_CIRCUIT
    [(_, high)] = _feed(core, A, Connect(RELAY_CIRCUIT_BIT | 3, "node-b"))
    assert isinstance(high, Error) and high.code is ErrorCode.PROTOCOL


def test_byte_limit_aborts_with_errors_to_both_ends() -> None:
    core = _core(max_circuit_bytes=10)
    b_cid = _open(core)
    assert len(_feed(core, A, Data(4, b"123456"))) == 1
    out = _feed(core, B, Data(b_cid, b"7890x"))
    assert {(c, e.code, e.circuit_id) for c, e in out if isinstance(e, Error)} == {
        (A, ErrorCode.CIRCUIT_BYTES_EXCEEDED, 4),
        (B, ErrorCode.CIRCUIT_BYTES_EXCEEDED, b_cid),
    }
    assert core.circuit_count() == 0


def test_duration_limit_is_a_timer() -> None:
    core = _core(max_circuit_seconds=30.0)
    assert core.get_timer() is None
    _feed(core, B, Reserve("node-b"))
    _feed(core, A, Connect(4, "node-b"), now=100.0)
    assert core.get_timer() == 130.0
    assert core.handle_timer(129.9) == []
    out = _msgs(core.handle_timer(130.0))
    assert {e.code for _, e in out if isinstance(e, Error)} == {ErrorCode.CIRCUIT_DURATION_EXCEEDED}
    assert core.get_timer() is None


def test_queue_full_abort_and_disconnect_cleanup() -> None:
    core = _core()
    b_cid = _open(core)
    out = _msgs(core.abort((A, 4), ErrorCode.QUEUE_FULL, "full"))
    assert {(c, e.code) for c, e in out if isinstance(e, Error)} == {
        (A, ErrorCode.QUEUE_FULL),
        (B, ErrorCode.QUEUE_FULL),
    }
    _feed(core, A, Connect(6, "node-b"))
    assert _msgs(core.disconnect(A)) == [(B, Close(b_cid + 1, "peer disconnected"))]
    assert core.reservation_count() == 1
    assert core.disconnect(B) == [] and core.reservation_count() == 0


def test_garbage_is_reported_then_a_broken_stream_drops_the_client() -> None:
    core = _core()
    out = core.receive(A, b"\x00\x00\x00\x02\x63z", 0.0)  # unknown frame type 99
    [(_, error)] = _msgs(out)
    assert isinstance(error, Error) and error.code is ErrorCode.PROTOCOL
    assert error.circuit_id == NO_CIRCUIT
    out = core.receive(A, b"\xff\xff\xff\xff\x06", 0.0)
    assert isinstance(out[-1], Drop)
    [(_, relay_only)] = _feed(core, B, Connected(1))
    assert isinstance(relay_only, Error) and relay_only.code is ErrorCode.PROTOCOL
    assert core.counters["bad_frame"] == 1 and core.counters["stream_broken"] == 1
