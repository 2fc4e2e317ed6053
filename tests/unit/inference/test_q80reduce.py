"""The all-reduce with Q80 contributions: the same bits on every rank, close to the
float32 sum, and about 3.8 times fewer bytes."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from reconciler.inference.collectives import Array, Metered, SingleRank
from reconciler.inference.errors import CollectiveError
from reconciler.inference.inprocess import InProcessGroup
from reconciler.inference.q80reduce import (
    Q80Collectives,
    carrier_len,
    from_carrier,
    resolve_wire,
    with_wire,
)
from tests.inference_ranks import _abort


def _run(n_ranks: int, parts: list[Array]) -> tuple[list[Array], list[int]]:
    members = InProcessGroup(n_ranks, timeout=20.0).members()
    meters = [Metered(Q80Collectives(m), time.perf_counter) for m in members]
    out: list[Array | None] = [None] * n_ranks

    def body(r: int) -> None:
        out[r] = meters[r].all_reduce_sum(parts[r])

    threads = [threading.Thread(target=body, args=(r,)) for r in range(n_ranks)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(o is not None for o in out)
    return [o for o in out if o is not None], [m.bytes_sent for m in meters]


@pytest.mark.parametrize(("n_ranks", "shape"), [(2, (1, 576)), (3, (5, 100)), (4, (7, 33))])
def test_every_rank_gets_the_same_bits_close_to_the_float32_sum(
    n_ranks: int, shape: tuple[int, int]
) -> None:
    rng = np.random.default_rng(n_ranks)
    parts = [(rng.standard_normal(shape) * (r + 1) * 3.0).astype(np.float32)
             for r in range(n_ranks)]  # fmt: skip
    sums, sent = _run(n_ranks, parts)
    for s in sums:
        assert s.dtype == np.float32 and s.shape == shape
        assert np.array_equal(s, sums[0])  # identical bits on every rank
    exact = np.sum(parts, axis=0)
    # each part is off by at most half its block's step, max|block| / 254 (+ float16
    # rounding of the scale): bounded here by the sum of each part's max|x| / 127
    bound = sum(float(np.abs(p).max()) for p in parts) / 127.0
    assert float(np.abs(sums[0] - exact).max()) <= bound
    assert float(np.abs(sums[0] - exact).mean()) < bound / 4  # typical error much smaller
    n = shape[0] * shape[1]
    assert sent == [(n_ranks - 1) * carrier_len(n) * 4] * n_ranks
    assert sent[0] < 0.3 * (n_ranks - 1) * n * 4  # vs float32 contributions


def test_all_gather_passes_through_and_one_rank_is_untouched() -> None:
    x = np.arange(5, dtype=np.float32)
    q = Q80Collectives(SingleRank())
    assert q.all_reduce_sum(x) is x and q.all_gather(x)[0] is x
    one = SingleRank()
    assert with_wire(one, "q80") is one  # nothing to send: no quantization either


class Liar:
    """Rank 0 of two; rank 1 sends ``bad`` as its encoded contribution."""

    rank, world_size = 0, 2

    def __init__(self, bad: Array) -> None:
        self.bad = bad

    def all_reduce_sum(self, x: Array) -> Array:
        raise AssertionError("the Q80 wrapper must not all-reduce float32")

    def all_gather(self, x: Array) -> list[Array]:
        return [x, self.bad]

    def broadcast(self, x: Array, root: int) -> Array:
        raise AssertionError("the Q80 wrapper's reductions do not broadcast")


@pytest.mark.parametrize("size", [0, 5, 9, 100])
def test_a_contribution_of_the_wrong_size_is_refused(size: int) -> None:
    x = np.ones((1, 64), dtype=np.float32)  # 2 blocks: 68 bytes, 17 carrier floats
    with pytest.raises(CollectiveError, match="cannot hold"):
        Q80Collectives(Liar(np.zeros(size, np.float32))).all_reduce_sum(x)


def test_the_carrier_keeps_any_bit_pattern() -> None:
    x = np.linspace(-3.0, 3.0, 96, dtype=np.float32)
    good = Q80Collectives(Liar(np.zeros(carrier_len(96), np.float32)))
    np.testing.assert_allclose(good.all_reduce_sum(x), x, atol=3.0 / 254 * 1.01)
    with pytest.raises(CollectiveError):
        from_carrier(np.zeros(carrier_len(96), np.float64), 96)


def test_wire_choice() -> None:
    assert resolve_wire("auto", "int8") == "q80" and resolve_wire("auto", "exact") == "f32"
    assert resolve_wire("f32", "int8") == "f32" and resolve_wire("q80", "exact") == "q80"
    with pytest.raises(ValueError, match="unknown wire format"):
        resolve_wire("f16", "exact")
    member = InProcessGroup(2).members()[0]
    assert with_wire(member, "f32") is member
    assert isinstance(with_wire(member, "q80"), Q80Collectives)


def test_a_failing_rank_behind_the_q80_wrapper_releases_the_others() -> None:
    """run_ranks breaks the in-process group through every wrapper when a rank fails, so
    no rank waits for a contribution that will never come."""
    members = InProcessGroup(2, timeout=600.0).members()
    engine = SimpleNamespace(comm=Metered(Q80Collectives(members[1]), time.perf_counter))
    _abort(engine)  # type: ignore[arg-type]
    with pytest.raises(CollectiveError, match="left the group"):
        members[0].all_reduce_sum(np.ones((1, 32), np.float32))  # at once, not in 600 s
