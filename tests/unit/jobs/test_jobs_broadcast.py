"""NetworkCollectives.broadcast: one hop from the root, steps kept aligned, forged or
late frames refused; and pipeline stages decoding over it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from reconciler.inference import model
from reconciler.inference.errors import CollectiveError
from reconciler.inference.loader import load_model_info, load_shard
from reconciler.inference.model import Engine
from reconciler.inference.sampling import SamplingParams
from reconciler.inference.sharding import full_share, plan_stages
from reconciler.jobs.errors import CollectiveTimeout
from reconciler.jobs.netcollectives import NetworkCollectives, split_session
from reconciler.jobs.wire import Op, encode

NODES = ["a", "b", "c", "d"]
MODELS = Path(__file__).resolve().parents[2] / "fixtures" / "models"


class Wire:
    """Delivers every send straight to the destination rank (from the sending thread)."""

    def __init__(self) -> None:
        self.ranks: dict[str, NetworkCollectives] = {}
        self.sent: list[tuple[str, str]] = []

    def sender(self, me: str) -> Any:
        wire = self

        class _S:
            def send(self, node_id: str, payload: bytes) -> None:
                wire.sent.append((me, node_id))
                _, frame = split_session(payload)
                assert wire.ranks[node_id].deliver(me, frame)  # nothing dropped

        return _S()


def _group(n: int, timeout: float = 5.0) -> list[NetworkCollectives]:
    wire = Wire()
    nodes = NODES[:n]
    ranks = [NetworkCollectives(7, r, nodes, wire.sender(nodes[r]), timeout) for r in range(n)]
    wire.ranks = dict(zip(nodes, ranks, strict=True))
    return ranks


def _on_threads(ranks: list[Any], fn: Callable[[Any], Any]) -> list[Any]:
    out: list[Any] = [None] * len(ranks)
    errors: list[BaseException] = []

    def body(r: int) -> None:
        try:
            out[r] = fn(ranks[r])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(r,)) for r in range(len(ranks))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    if errors:
        raise errors[0]
    return out


def test_the_root_sends_once_to_every_other_rank() -> None:
    ranks = _group(3)

    def call(c: NetworkCollectives) -> Any:
        mine = np.full((2, 5), c.rank, dtype=np.float32)
        return c.broadcast(mine if c.rank == 1 else np.zeros(0, np.float32), root=1)

    for got in _on_threads(ranks, call):
        assert got.dtype == np.float32 and got.shape == (2, 5) and np.all(got == 1.0)
    assert [c.messages_sent for c in ranks] == [0, 2, 0]


def test_roots_and_shapes_change_from_call_to_call() -> None:
    """A pipeline's pattern: the turn passes from rank to rank, shapes vary, and
    all-reduces interleave; the step numbers stay aligned."""
    ranks = _group(4)

    def loop(c: NetworkCollectives) -> list[float]:
        out = []
        for step in range(20):
            root = step % 4
            x = np.full((step % 3 + 1, 4), 10.0 * step + c.rank, dtype=np.float32)
            out.append(float(c.broadcast(x, root)[0, 0]))
            if step % 5 == 0:
                out.append(float(c.all_reduce_sum(np.ones(1, np.float32))[0]))
        return out

    results = _on_threads(ranks, loop)
    assert results[0] == results[1] == results[2] == results[3]
    assert results[0][:3] == [0.0, 4.0, 11.0]  # step 0 from rank 0, then the sum, step 1


class _Null:
    def send(self, node_id: str, payload: bytes) -> None:
        pass


def _frame(op: Op, step: int, array: Any) -> bytes:
    return encode(op, step, np.asarray(array))


def test_a_frame_from_a_rank_that_is_not_the_root_is_refused() -> None:
    c = NetworkCollectives(1, 2, NODES[:3], _Null(), timeout=1.0)
    c.deliver("b", _frame(Op.BROADCAST, 0, np.ones(3, np.float32)))  # b is not the root
    c.deliver("a", _frame(Op.BROADCAST, 0, np.ones(3, np.float32)))
    with pytest.raises(CollectiveError, match="b sent to a broadcast whose root is a"):
        c.broadcast(np.zeros(0, np.float32), root=0)


@pytest.mark.parametrize(
    "frame",
    [
        _frame(Op.ALL_REDUCE_SUM, 0, np.ones(3, np.float32)),
        _frame(Op.ALL_GATHER, 0, np.ones(3, np.float32)),
        _frame(Op.BROADCAST, 0, np.ones(3, np.float16)),
        _frame(Op.BROADCAST, 0, np.ones(3, np.int64)),
    ],
    ids=["all-reduce", "all-gather", "float16", "int64"],
)
def test_a_root_frame_of_the_wrong_op_or_dtype_is_refused(frame: bytes) -> None:
    c = NetworkCollectives(1, 1, NODES[:2], _Null(), timeout=1.0)
    c.deliver("a", frame)
    with pytest.raises(CollectiveError, match="step 0"):
        c.broadcast(np.zeros(0, np.float32), root=0)


def test_a_broadcast_frame_is_refused_by_an_all_reduce() -> None:
    c = NetworkCollectives(1, 0, NODES[:2], _Null(), timeout=1.0)
    c.deliver("b", _frame(Op.BROADCAST, 0, np.ones(3, np.float32)))
    with pytest.raises(CollectiveError):
        c.all_reduce_sum(np.ones(3, np.float32))


def test_a_silent_root_times_out_and_is_named() -> None:
    c = NetworkCollectives(1, 0, NODES[:3], _Null(), timeout=0.05)
    c.deliver("b", _frame(Op.BROADCAST, 0, np.ones(3, np.float32)))
    with pytest.raises(CollectiveTimeout) as info:
        c.broadcast(np.zeros(0, np.float32), root=2)
    assert info.value.missing == ("c",)


def test_the_root_waits_for_nobody() -> None:
    c = NetworkCollectives(1, 0, NODES[:3], _Null(), timeout=30.0)
    x = np.arange(4, dtype=np.float32)
    for _ in range(3):
        assert c.broadcast(x, root=0) is x
    assert c.messages_sent == 6


def test_abort_wakes_a_waiting_receiver() -> None:
    c = NetworkCollectives(1, 1, NODES[:2], _Null(), timeout=30.0)
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            c.broadcast(np.zeros(0, np.float32), root=0)
        except CollectiveError as exc:
            errors.append(exc)

    t = threading.Thread(target=wait)
    t.start()
    c.abort("MemberLost: a")
    t.join(5)
    assert not t.is_alive() and "MemberLost" in str(errors[0])


def test_a_root_outside_the_group_is_a_value_error() -> None:
    c = NetworkCollectives(1, 0, NODES[:2], _Null())
    with pytest.raises(ValueError, match="root 2"):
        c.broadcast(np.ones(1, np.float32), root=2)


def test_stale_frames_do_not_pile_up() -> None:
    c = NetworkCollectives(1, 0, NODES[:2], _Null(), timeout=1.0)
    for step in range(6):
        c.deliver("b", _frame(Op.BROADCAST, step, np.ones(2, np.float32)))
        c.deliver("b", _frame(Op.BROADCAST, step, np.ones(2, np.float32)))  # a duplicate
        c.broadcast(np.zeros(0, np.float32), root=1)
        c.deliver("b", _frame(Op.BROADCAST, step, np.ones(2, np.float32)))  # late, again
    c.broadcast(np.ones(2, np.float32), root=0)  # step 6
    assert len(c._inbox) == 0 and c.dropped["duplicate"] == 6


@pytest.mark.parametrize("counts", [[1, 1], [1, 1, 1, 1]])
def test_pipeline_stages_decode_over_the_network(
    monkeypatch: pytest.MonkeyPatch, counts: list[int]
) -> None:
    """Greedy tokens of stages over NetworkCollectives equal the single rank's, with a
    prompt long enough for several prefill chunks (no frame is dropped on the way)."""
    monkeypatch.setattr(model, "PREFILL_CHUNK", 2)
    path = MODELS / ("tiny-llama.gguf" if len(counts) == 2 else "tiny-gemma3-hf")
    info = load_model_info(path)
    counts = counts if len(counts) == 2 else [1, 2, 1, 2]
    ids = info.tokenizer.encode("Hello world, this is a tiny")
    params = SamplingParams(max_tokens=5, ignore_eos=True)
    oracle = Engine(info.config, load_shard(path, info.config, full_share(info.config), None,
                                            "numpy"), cache_len=64)  # fmt: skip
    want_logits = oracle.prefill(ids, all_logits=True)
    want = [e.token_id for e in oracle.generate(ids, params)]
    comms = _group(len(counts))
    engines = [
        Engine(info.config, load_shard(path, info.config, s, None, "numpy"), c, cache_len=64)
        for s, c in zip(plan_stages(info.config, counts), comms, strict=True)
    ]
    logits = _on_threads(engines, lambda e: e.prefill(ids, all_logits=True))
    assert all(np.array_equal(got, want_logits) for got in logits)
    got = _on_threads(engines, lambda e: [ev.token_id for ev in e.generate(ids, params)])
    assert got == [want] * len(counts)
    assert all(not c.dropped for c in comms)
