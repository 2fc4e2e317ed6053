"""NetworkCollectives with threads: rank-order sums, early frames, drops, timeout, abort."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from reconciler.inference.errors import CollectiveError
from reconciler.jobs.errors import CollectiveTimeout, JobProtocolError
from reconciler.jobs.netcollectives import SESSION, NetworkCollectives, split_session
from reconciler.jobs.wire import Op, encode

NODES = ["a", "b", "c"]


class Wire:
    """Delivers every send straight to the destination rank (from the sending thread)."""

    def __init__(self) -> None:
        self.ranks: dict[str, NetworkCollectives] = {}
        self.sent: list[tuple[str, bytes]] = []

    def sender(self, me: str) -> Any:
        wire = self

        class _S:
            def send(self, node_id: str, payload: bytes) -> None:
                wire.sent.append((node_id, payload))
                session, frame = split_session(payload)
                assert session == 42
                wire.ranks[node_id].deliver(me, frame)

        return _S()


def _group(n: int, timeout: float = 5.0) -> tuple[Wire, list[NetworkCollectives]]:
    wire = Wire()
    nodes = NODES[:n]
    ranks = [NetworkCollectives(42, r, nodes, wire.sender(nodes[r]), timeout) for r in range(n)]
    wire.ranks = dict(zip(nodes, ranks, strict=True))
    return wire, ranks


def _on_threads(
    ranks: list[NetworkCollectives], fn: Callable[[NetworkCollectives], Any]
) -> list[Any]:
    out: list[Any] = [None] * len(ranks)

    def body(r: int) -> None:
        out[r] = fn(ranks[r])

    threads = [threading.Thread(target=body, args=(r,)) for r in range(len(ranks))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return out


def test_all_reduce_sums_in_rank_order_on_every_rank() -> None:
    wire, ranks = _group(3)
    values = [1e8, 1.0, -1e8]  # float32: (1e8 + 1) - 1e8 == 0, any other order gives 1

    def reduce(c: NetworkCollectives) -> Any:
        return c.all_reduce_sum(np.full((2, 3), values[c.rank], dtype=np.float32))

    results = _on_threads(ranks, reduce)
    for res in results:
        assert res.dtype == np.float32
        assert np.array_equal(res, np.zeros((2, 3), dtype=np.float32))
    assert len(wire.sent) == 3 * 2  # one round: N-1 messages per rank
    assert all(c.messages_sent == 2 and c.calls == 1 for c in ranks)
    assert all(c.bytes_sent == 2 * len(wire.sent[0][1]) for c in ranks)


def test_all_gather_returns_every_rank_in_order_with_its_own_shape() -> None:
    _, ranks = _group(3)

    def gather(c: NetworkCollectives) -> Any:
        return c.all_gather(np.full((1, c.rank + 1), c.rank, dtype=np.float32))

    for parts in _on_threads(ranks, gather):
        assert [p.shape for p in parts] == [(1, 1), (1, 2), (1, 3)]
        assert [float(p[0, 0]) for p in parts] == [0.0, 1.0, 2.0]


def test_many_steps_in_a_row() -> None:
    _, ranks = _group(2)

    def loop(c: NetworkCollectives) -> list[float]:
        x = np.ones(4, dtype=np.float32)
        out = []
        for _ in range(50):
            x = c.all_reduce_sum(x)
            out.append(float(c.all_gather(x[:1])[1 - c.rank][0]))
        return out

    a, b = _on_threads(ranks, loop)
    assert a == b and a[-1] == 2.0**50


class _Null:
    def send(self, node_id: str, payload: bytes) -> None:
        pass


def _frame(op: Op, step: int, value: float, shape: tuple[int, ...] = (3,)) -> bytes:
    return encode(op, step, np.full(shape, value, dtype=np.float32))


def test_frames_of_later_steps_are_buffered() -> None:
    c = NetworkCollectives(1, 0, ["a", "b"], _Null(), timeout=1.0)
    assert c.deliver("b", _frame(Op.ALL_REDUCE_SUM, 1, 20.0))  # arrives first
    assert c.deliver("b", _frame(Op.ALL_REDUCE_SUM, 0, 10.0))
    x = np.ones(3, dtype=np.float32)
    assert c.all_reduce_sum(x).tolist() == [11.0] * 3
    assert c.all_reduce_sum(x).tolist() == [21.0] * 3


def test_bad_unknown_duplicate_and_far_frames_are_dropped() -> None:
    c = NetworkCollectives(1, 0, ["a", "b"], _Null(), timeout=1.0)
    assert not c.deliver("z", _frame(Op.ALL_REDUCE_SUM, 0, 1.0))
    assert not c.deliver("a", _frame(Op.ALL_REDUCE_SUM, 0, 1.0))  # itself
    assert not c.deliver("b", b"MNTF garbage")
    assert not c.deliver("b", _frame(Op.ALL_REDUCE_SUM, 9, 1.0))
    assert c.deliver("b", _frame(Op.ALL_REDUCE_SUM, 0, 1.0))
    assert not c.deliver("b", _frame(Op.ALL_REDUCE_SUM, 0, 5.0))
    assert dict(c.dropped) == {
        "unknown-sender": 2,
        "bad-frame": 1,
        "step-out-of-window": 1,
        "duplicate": 1,
    }
    assert c.all_reduce_sum(np.ones(3, dtype=np.float32)).tolist() == [2.0] * 3


def test_wrong_op_or_shape_is_a_collective_error() -> None:
    c = NetworkCollectives(1, 0, ["a", "b"], _Null(), timeout=1.0)
    c.deliver("b", _frame(Op.ALL_GATHER, 0, 1.0))
    with pytest.raises(CollectiveError):
        c.all_reduce_sum(np.ones(3, dtype=np.float32))
    c.deliver("b", _frame(Op.ALL_REDUCE_SUM, 1, 1.0, (4,)))
    with pytest.raises(CollectiveError):
        c.all_reduce_sum(np.ones(3, dtype=np.float32))


def test_timeout_names_the_missing_nodes() -> None:
    c = NetworkCollectives(1, 1, NODES, _Null(), timeout=0.05)
    c.deliver("a", _frame(Op.ALL_REDUCE_SUM, 0, 1.0))
    with pytest.raises(CollectiveTimeout) as info:
        c.all_reduce_sum(np.ones(3, dtype=np.float32))
    assert info.value.missing == ("c",)


def test_abort_wakes_a_waiting_rank() -> None:
    c = NetworkCollectives(1, 0, ["a", "b"], _Null(), timeout=30.0)
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            c.all_reduce_sum(np.ones(3, dtype=np.float32))
        except CollectiveError as exc:
            errors.append(exc)

    t = threading.Thread(target=wait)
    t.start()
    c.abort("MemberLost: b")
    t.join(5)
    assert not t.is_alive() and "MemberLost" in str(errors[0])
    with pytest.raises(CollectiveError):  # and every later call
        c.all_gather(np.ones(1, dtype=np.float32))


def test_send_failure_is_a_collective_error() -> None:
    class Broken:
        def send(self, node_id: str, payload: bytes) -> None:
            raise ConnectionError("no link")

    c = NetworkCollectives(1, 0, ["a", "b"], Broken())
    with pytest.raises(CollectiveError, match="no link"):
        c.all_reduce_sum(np.ones(3, dtype=np.float32))


def test_world_of_one_sends_nothing() -> None:
    c = NetworkCollectives(1, 0, ["a"], _Null())
    x = np.ones(3, dtype=np.float32)
    assert np.array_equal(c.all_reduce_sum(x), x) and c.messages_sent == 0


def test_session_header() -> None:
    assert split_session(SESSION.pack(7) + b"frame") == (7, b"frame")
    with pytest.raises(JobProtocolError):
        split_session(b"\x01\x02")


def test_q80_all_reduce_over_the_network_sends_a_quarter_of_the_bytes() -> None:
    """The Q80 wrapper's carrier travels as an ordinary float32 frame, bits intact."""
    from reconciler.inference.q80reduce import Q80Collectives

    rng = np.random.default_rng(3)
    parts = [rng.standard_normal((1, 576)).astype(np.float32) for _ in range(2)]
    _, ranks = _group(2)
    q80 = _on_threads(ranks, lambda c: Q80Collectives(c).all_reduce_sum(parts[c.rank]))
    q80_bytes = ranks[0].bytes_sent
    _, ranks = _group(2)
    f32 = _on_threads(ranks, lambda c: c.all_reduce_sum(parts[c.rank]))
    assert np.array_equal(q80[0], q80[1]) and q80[0].shape == (1, 576)
    np.testing.assert_allclose(q80[0], f32[0], atol=2 * max(abs(p).max() for p in parts) / 254)
    assert q80_bytes < 0.3 * ranks[0].bytes_sent  # 652 vs 2,352 bytes with headers
