"""NetworkCollectives.broadcast: one hop from the root, interleaved with the other ops."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from reconciler.jobs.errors import CollectiveTimeout
from tests.unit.jobs.test_jobs_netcollectives import _group, _on_threads


def test_every_rank_gets_the_root_s_array_and_only_the_root_sends() -> None:
    wire, ranks = _group(3)

    def cast(c: Any) -> Any:
        mine = np.full((1, 4), 7.0, dtype=np.float32) if c.rank == 1 else np.empty(0, np.float32)
        return c.broadcast(mine, root=1)

    for got in _on_threads(ranks, cast):
        assert got.dtype == np.float32 and np.array_equal(got, np.full((1, 4), 7.0, np.float32))
    assert [c.messages_sent for c in ranks] == [0, 2, 0]
    assert {dst for dst, _ in wire.sent} == {"a", "c"}


def test_a_chain_of_stages_passes_the_activation_along() -> None:
    """Pipeline-shaped: stage r adds r + 1 and broadcasts, in turn, for many tokens."""
    _, ranks = _group(3)

    def run(c: Any) -> list[float]:
        out = []
        for token in range(20):
            x = np.array([float(token)], dtype=np.float32)
            for stage in range(3):
                mine = x + np.float32(stage + 1) if c.rank == stage else np.empty(0, np.float32)
                x = c.broadcast(mine, root=stage)
            out.append(float(c.all_reduce_sum(x)[0]))
        return out

    results = _on_threads(ranks, run)
    assert results[0] == results[1] == results[2] == [3.0 * (t + 6) for t in range(20)]


def test_a_silent_root_times_out_naming_only_the_root() -> None:
    _, ranks = _group(3, timeout=0.2)
    with pytest.raises(CollectiveTimeout) as lost:
        ranks[0].broadcast(np.empty(0, np.float32), root=2)
    assert lost.value.missing == ("c",)


def test_a_root_outside_the_group_is_refused() -> None:
    _, ranks = _group(2)
    with pytest.raises(ValueError):
        ranks[0].broadcast(np.zeros(1, np.float32), root=2)
