"""plan_shares: proportional, contiguous, complete splits of heads, MLP columns and vocabulary."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.inference.config import ModelConfig
from reconciler.inference.sharding import ffn_unit, full_share, plan_shares

CONFIG = ModelConfig(
    arch="llama",
    vocab=49152,
    dim=576,
    n_layers=30,
    n_heads=9,
    n_kv_heads=3,
    head_dim=64,
    hidden_dim=1536,
    norm_eps=1e-5,
    rope_theta=1e5,
    max_seq=2048,
    tie_embeddings=True,
)


def _ranges(cuts: list[int], total: int) -> list[tuple[int, int]]:
    points = [0, *sorted(set(cuts)), total]
    return list(itertools.pairwise(points))


@given(st.lists(st.integers(1, 8191), max_size=6))
def test_shares_tile_every_dimension(cuts: list[int]) -> None:
    ranges = _ranges(cuts, 8192)
    shares = plan_shares(CONFIG, ranges, 8192)
    assert [s.rank for s in shares] == list(range(len(ranges)))
    for lo, hi, total in (
        ("kv_start", "kv_end", 3),
        ("ffn_start", "ffn_end", 1536),
        ("vocab_start", "vocab_end", 49152),
    ):
        bounds = [(getattr(s, lo), getattr(s, hi)) for s in shares]
        assert bounds[0][0] == 0 and bounds[-1][1] == total
        assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
        unit = 256 if lo == "ffn_start" else 1  # MLP columns go in whole K-quant blocks
        for (start, end), (c0, c1) in zip(bounds, ranges, strict=True):
            assert start % unit == 0
            assert abs((end - start) - total * (c1 - c0) / 8192) < unit  # largest remainder


def test_heads_follow_kv_groups() -> None:
    shares = plan_shares(CONFIG, [(0, 2731), (2731, 5462), (5462, 8192)], 8192)
    assert [(s.head_start, s.head_end) for s in shares] == [(0, 3), (3, 6), (6, 9)]
    assert [s.n_kv_heads for s in shares] == [1, 1, 1]


def test_uneven_split_is_proportional() -> None:
    a, b = plan_shares(CONFIG, [(0, 5000), (5000, 8192)], 8192)
    assert (a.n_kv_heads, b.n_kv_heads) == (2, 1)
    assert (a.ffn_end, b.ffn_end) == (1024, 1536)  # 3.66 of 6 blocks of 256 -> 4


@pytest.mark.parametrize(("hidden", "unit"), [(1536, 256), (96, 32), (100, 1), (2048, 256)])
def test_mlp_split_unit_is_a_whole_block(hidden: int, unit: int) -> None:
    assert ffn_unit(hidden) == unit
    config = dataclasses.replace(CONFIG, hidden_dim=hidden)
    for share in plan_shares(config, [(0, 3000), (3000, 5000), (5000, 8192)], 8192):
        assert share.ffn_start % unit == 0 and share.ffn_end % unit in (0, hidden % unit)


def test_full_share_is_everything() -> None:
    s = full_share(CONFIG)
    assert (s.kv_end, s.ffn_end, s.vocab_end, s.world_size) == (3, 1536, 49152, 1)


@pytest.mark.parametrize(
    "ranges", [[], [(0, 10), (20, 8192)], [(0, 4000)], [(1, 8192)], [(0, 0), (0, 8192)]]
)
def test_bad_ranges_are_refused(ranges: list[tuple[int, int]]) -> None:
    with pytest.raises(ValueError):
        plan_shares(CONFIG, ranges, 8192)
