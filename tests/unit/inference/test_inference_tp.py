"""Tensor-parallel ranks (threads + InProcessGroup) against the single-rank oracle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reconciler.inference.errors import CollectiveError
from reconciler.inference.inprocess import InProcessGroup
from reconciler.inference.loader import load_model_info, load_shard
from reconciler.inference.model import Engine
from reconciler.inference.sampling import SamplingParams
from reconciler.inference.sharding import full_share, plan_shares
from reconciler.inference.weights import ShardWeights
from tests.inference_ranks import make_engines, run_ranks

SPLITS = {
    "tp2-uneven": [(0, 5000), (5000, 8192)],
    "tp3-uneven": [(0, 1000), (1000, 4500), (4500, 8192)],
    "tp3-tiny-first": [(0, 100), (100, 6000), (6000, 8192)],
}
PROMPT = "Hello world, this is a tiny"


@pytest.mark.parametrize("kernels", ["numpy", "auto"])  # auto: onnxruntime where it runs
@pytest.mark.parametrize("split", sorted(SPLITS))
def test_tensor_parallel_matches_single_rank(
    models_dir: Path, tiny_name: str, split: str, kernels: str
) -> None:
    """Ranks on either kernel against the single-rank numpy oracle."""
    path = models_dir / tiny_name
    info = load_model_info(path)
    ids = info.tokenizer.encode(PROMPT)
    oracle = Engine(
        info.config, load_shard(path, info.config, full_share(info.config), kernels="numpy")
    )
    want_logits = oracle.prefill(ids, all_logits=True)
    params = SamplingParams(max_tokens=6, ignore_eos=True)
    want_ids = [e.token_id for e in oracle.generate(ids, params)]

    engines = make_engines(path, info.config, SPLITS[split], 8192, 64, kernels, "exact")
    logits = run_ranks(engines, lambda e: e.prefill(ids, all_logits=True))
    for rank_logits in logits:
        assert rank_logits.dtype == np.float32
        np.testing.assert_allclose(rank_logits, want_logits, atol=1e-4, rtol=1e-5)
        assert np.array_equal(rank_logits, logits[0])  # bit-identical on every rank
    got = run_ranks(engines, lambda e: [ev.token_id for ev in e.generate(ids, params)])
    assert got == [want_ids] * len(engines)


def test_sampled_tokens_agree_across_ranks(models_dir: Path) -> None:
    path = models_dir / "tiny-qwen2-hf"
    info = load_model_info(path)
    engines = make_engines(path, info.config, SPLITS["tp3-uneven"], 8192, cache_len=64)
    params = SamplingParams(max_tokens=8, temperature=1.5, top_p=0.95, seed=7, ignore_eos=True)
    ids = info.tokenizer.encode(PROMPT)
    got = run_ranks(engines, lambda e: [ev.token_id for ev in e.generate(ids, params)])
    assert got[0] == got[1] == got[2]


def test_onnxruntime_refuses_heads_its_attention_cannot_run(models_dir: Path) -> None:
    path = models_dir / "tiny-qwen2-hf"  # head_dim 8
    info = load_model_info(path)
    with pytest.raises(ValueError, match="multiple of 16"):
        load_shard(path, info.config, full_share(info.config), kernels="onnxruntime")
    weights = load_shard(path, info.config, full_share(info.config), kernels="auto")
    assert isinstance(weights, ShardWeights)  # auto falls back to the numpy kernels


def test_quantized_shards_hold_about_their_share(models_dir: Path) -> None:
    path = models_dir / "tiny-llama.gguf"
    config = load_model_info(path).config
    full = load_shard(path, config, full_share(config), kernels="onnxruntime").nbytes()
    shares = plan_shares(config, SPLITS["tp2-uneven"], 8192)
    sizes = [load_shard(path, config, s, kernels="onnxruntime").nbytes() for s in shares]
    assert full < load_shard(path, config, full_share(config), kernels="numpy").nbytes()
    for share, size in zip(shares, sizes, strict=True):
        lo, hi = SPLITS["tp2-uneven"][share.rank]
        assert size <= ((hi - lo) / 8192 + 0.25) * full  # + whole blocks and replicated norms


def test_shards_hold_their_share_only(models_dir: Path) -> None:
    path = models_dir / "tiny-llama.gguf"
    config = load_model_info(path).config
    full = load_shard(path, config, full_share(config), kernels="numpy").nbytes()
    shares = plan_shares(config, SPLITS["tp2-uneven"], 8192)
    sizes = [load_shard(path, config, s, kernels="numpy").nbytes() for s in shares]
    norms = 4 * config.dim * (2 * config.n_layers + 1)  # replicated on every rank
    assert sum(sizes) == full + norms
    for share, size in zip(shares, sizes, strict=True):
        fraction = (
            SPLITS["tp2-uneven"][share.rank][1] - SPLITS["tp2-uneven"][share.rank][0]
        ) / 8192
        assert size <= (fraction + 0.10) * full


def test_rank_with_zero_heads_still_contributes(models_dir: Path) -> None:
    path = models_dir / "tiny-llama-hf"  # 2 KV heads over 3 ranks: one rank has none
    config = load_model_info(path).config
    shares = plan_shares(config, SPLITS["tp3-uneven"], 8192)
    assert [s.n_kv_heads for s in shares].count(0) == 1
    assert all(s.ffn_end > s.ffn_start for s in shares)


def test_broken_group_raises_collective_error() -> None:
    group = InProcessGroup(2, timeout=5.0)
    member = group.members()[0]
    group.abort()
    with pytest.raises(CollectiveError):
        member.all_reduce_sum(np.zeros(3, dtype=np.float32))


@pytest.mark.parametrize("split", sorted(SPLITS))
def test_greedy_offers_pick_what_full_logits_pick(
    models_dir: Path, tiny_name: str, split: str
) -> None:
    """The greedy path gathers one (value, id) per rank instead of the logits: same winner,
    same logit, and a fraction of the bytes."""
    path = models_dir / tiny_name
    info = load_model_info(path)
    ids = info.tokenizer.encode(PROMPT)
    full = make_engines(path, info.config, SPLITS[split], 8192, cache_len=64)
    greedy = make_engines(path, info.config, SPLITS[split], 8192, cache_len=64)
    for engine in greedy:
        engine.greedy = True
    want = run_ranks(full, lambda e: e.prefill(ids))
    got = run_ranks(greedy, lambda e: e.prefill(ids))
    for rank_want, rank_got in zip(want, got, strict=True):
        winner = int(np.argmax(rank_want))
        assert int(np.argmax(rank_got)) == winner
        assert rank_got[winner] == rank_want[winner]
        assert np.isfinite(rank_got).sum() == 1
