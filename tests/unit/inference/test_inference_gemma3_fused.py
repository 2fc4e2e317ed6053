"""Gemma 3 on the onnxruntime kernels (sliding-window GQA, local RoPE tables, QK-norm,
post-norms, GeGLU, attention scale) against the numpy oracle on the tiny fixtures."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from reconciler.inference.config import ModelConfig
from reconciler.inference.kernels import resolve
from reconciler.inference.kernels.fused import FusedShard
from reconciler.inference.loader import load_model_info, load_shard
from reconciler.inference.model import Engine
from reconciler.inference.sampling import SamplingParams
from reconciler.inference.sharding import full_share
from tests.inference_ranks import make_engines, run_ranks

BOTH = pytest.mark.parametrize("name", ["tiny-gemma3.gguf", "tiny-gemma3-hf"])
TEXT = "The quick brown fox jumps over the lazy dog. Hello world"  # 15 tokens > window 4


def _pair(path: Path, config: ModelConfig) -> tuple[Engine, Engine]:
    """(numpy oracle, onnxruntime) engines of the same model."""
    engines = []
    for kernels in ("numpy", "onnxruntime"):
        weights = load_shard(path, config, full_share(config), kernels=kernels,
                             activations="exact")  # fmt: skip
        engines.append(Engine(config, weights, cache_len=64))
    assert isinstance(engines[1].weights, FusedShard)
    return engines[0], engines[1]


def _ids(path: Path) -> list[int]:
    return load_model_info(path).tokenizer.encode(TEXT)


@BOTH
def test_auto_kernels_pick_onnxruntime_for_gemma3(models_dir: Path, name: str) -> None:
    config = load_model_info(models_dir / name).config
    assert config.sliding_window and config.rope_theta_local is not None
    assert resolve("auto", config) == "onnxruntime"


@BOTH
def test_prefill_longer_than_the_window_matches_numpy(models_dir: Path, name: str) -> None:
    path = models_dir / name
    oracle, fused = _pair(path, load_model_info(path).config)
    ids = _ids(path)
    want = oracle.prefill(ids, all_logits=True)
    got = fused.prefill(ids, all_logits=True)
    np.testing.assert_allclose(got, want, atol=1e-3, rtol=1e-4)
    assert (got.argmax(-1) == want.argmax(-1)).all()


@BOTH
def test_decode_past_the_window_matches_numpy(models_dir: Path, name: str) -> None:
    path = models_dir / name
    oracle, fused = _pair(path, load_model_info(path).config)
    ids = _ids(path)
    for engine in (oracle, fused):
        engine.prefill(ids[:2])
    for token in ids[2:]:  # positions 2..14: the sliding layers drop keys on each step
        np.testing.assert_allclose(fused.decode(token), oracle.decode(token), atol=1e-3)


@BOTH
def test_prefill_in_chunks_past_the_window_matches_numpy(models_dir: Path, name: str) -> None:
    """A second chunk starting beyond the window sees only the window's cached keys."""
    path = models_dir / name
    oracle, fused = _pair(path, load_model_info(path).config)
    ids = _ids(path)
    for engine in (oracle, fused):
        engine.prefill(ids[:6])
    want = oracle.prefill(ids[6:], all_logits=True)
    np.testing.assert_allclose(fused.prefill(ids[6:], all_logits=True), want, atol=1e-3)


@pytest.mark.parametrize("window", [1, 2, 3, 7])
def test_window_sizes_see_the_same_keys_as_numpy(models_dir: Path, window: int) -> None:
    """Off by one in the window would change the logits of every later position."""
    path = models_dir / "tiny-gemma3.gguf"
    config = dataclasses.replace(load_model_info(path).config, sliding_window=window)
    oracle, fused = _pair(path, config)
    ids = _ids(path)
    want = oracle.prefill(ids, all_logits=True)
    np.testing.assert_allclose(fused.prefill(ids, all_logits=True), want, atol=1e-3)


@BOTH
def test_greedy_ids_match_numpy(models_dir: Path, name: str) -> None:
    path = models_dir / name
    oracle, fused = _pair(path, load_model_info(path).config)
    ids = _ids(path)[:5]
    params = SamplingParams(max_tokens=14, ignore_eos=True)
    want = [ev.token_id for ev in oracle.generate(ids, params)]
    assert [ev.token_id for ev in fused.generate(ids, params)] == want


@pytest.mark.parametrize("split", [[(0, 3000), (3000, 8192)], [(0, 1000), (1000, 8192)]])
def test_tensor_parallel_onnxruntime_matches_single_rank(
    models_dir: Path, split: list[tuple[int, int]]
) -> None:
    path = models_dir / "tiny-gemma3.gguf"
    info = load_model_info(path)
    ids = _ids(path)
    single = Engine(info.config, load_shard(path, info.config, full_share(info.config),
                                            kernels="onnxruntime", activations="exact"),
                    cache_len=64)  # fmt: skip
    want = single.prefill(ids, all_logits=True)
    params = SamplingParams(max_tokens=10, ignore_eos=True)
    want_ids = [e.token_id for e in single.generate(ids[:5], params)]
    engines = make_engines(path, info.config, split, 8192, 64, "onnxruntime", "exact")
    assert all(isinstance(e.weights, FusedShard) for e in engines)
    for logits in run_ranks(engines, lambda e: e.prefill(ids, all_logits=True)):
        np.testing.assert_allclose(logits, want, atol=1e-3, rtol=1e-4)
    got = run_ranks(engines, lambda e: [ev.token_id for ev in e.generate(ids[:5], params)])
    assert got == [want_ids] * len(engines)
