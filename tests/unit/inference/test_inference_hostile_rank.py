"""A rank that lies in the collectives (finding 13): token ids and gathered shapes
from peers are range-checked before they index anything."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from reconciler.inference.collectives import Array
from reconciler.inference.errors import CollectiveError
from reconciler.inference.loader import load_model_info, load_shard
from reconciler.inference.model import Engine
from reconciler.inference.sharding import plan_shares


class LyingPeer:
    """Rank 0 of two; rank 1's contributions are whatever ``lie`` makes of ours."""

    rank = 0
    world_size = 2

    def __init__(self, lie: Callable[[Array], Array]) -> None:
        self.lie = lie

    def all_reduce_sum(self, x: Array) -> Array:
        return x

    def all_gather(self, x: Array) -> list[Array]:
        return [x, self.lie(x)]

    def broadcast(self, x: Array, root: int) -> Array:
        raise AssertionError("tensor-parallel ranks do not broadcast")


def engine(models_dir: Path, lie: Callable[[Array], Array], greedy: bool) -> Engine:
    path = models_dir / "tiny-llama.gguf"
    config = load_model_info(path).config
    share = plan_shares(config, [(0, 4096), (4096, 8192)], 8192)[0]
    e = Engine(config, load_shard(path, config, share), LyingPeer(lie), cache_len=16)
    e.greedy = greedy
    return e


def f32(*values: float) -> Array:
    return np.array(values, dtype=np.float32)


@pytest.mark.parametrize(
    "offer",
    [f32(1e30, 1e9), f32(1e30, -3.0), f32(1e30, np.nan), f32(1e30, 2.5), np.zeros(3, np.float32)],
    ids=["beyond-vocab", "negative", "nan", "fraction", "wrong-shape"],
)
def test_a_greedy_winner_outside_the_vocabulary_is_refused(models_dir: Path, offer: Array) -> None:
    row = offer[None] if offer.size == 2 else offer  # one row (value, id) per position
    e = engine(models_dir, lambda x: row, greedy=True)
    with pytest.raises(CollectiveError):
        e.prefill([1, 2, 3])


def test_one_bad_row_among_many_greedy_winners_is_refused(models_dir: Path) -> None:
    """A verify pass gathers a winner per row: every row is checked, not only the first."""

    def lie(x: Array) -> Array:
        bad = x.copy()
        bad[-1] = (1e30, 1e9)
        return bad

    e = engine(models_dir, lie, greedy=True)
    with pytest.raises(CollectiveError, match="outside the vocabulary"):
        e.prefill([1, 2, 3], all_logits=True)
    honest = engine(models_dir, lambda x: x, greedy=True)
    assert honest.prefill([1, 2, 3], all_logits=True).shape == (3, honest.config.vocab)


def test_gathered_logits_of_the_wrong_width_are_refused(models_dir: Path) -> None:
    e = engine(models_dir, lambda x: np.zeros((x.shape[0], 7), np.float32), greedy=False)
    with pytest.raises(CollectiveError, match="gathered logits"):
        e.prefill([1, 2, 3])


def test_token_ids_outside_the_vocabulary_never_index_the_embedding(models_dir: Path) -> None:
    e = engine(models_dir, lambda x: x, greedy=False)
    vocab = e.config.vocab
    for bad in (vocab, vocab + 10**6, -1):
        with pytest.raises(ValueError, match="outside the vocabulary"):
            e.prefill([1, bad])
