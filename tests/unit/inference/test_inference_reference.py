"""Single rank (the oracle) against Hugging Face transformers outputs recorded in JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from reconciler.inference.loader import load_model_info, load_shard
from reconciler.inference.model import Engine
from reconciler.inference.sampling import SamplingParams
from reconciler.inference.sharding import full_share


def _engine(path: Path) -> tuple[Engine, Any]:
    info = load_model_info(path)
    weights = load_shard(path, info.config, full_share(info.config), activations="exact")
    return Engine(info.config, weights, cache_len=64), info


def test_tokenizer_matches_reference(
    models_dir: Path, reference: dict[str, Any], tiny_name: str
) -> None:
    info = load_model_info(models_dir / tiny_name)
    for case in reference[tiny_name]["cases"]:
        assert info.tokenizer.encode(case["prompt"]) == case["prompt_ids"]


def test_prefill_logits_match_reference(
    models_dir: Path, reference: dict[str, Any], tiny_name: str
) -> None:
    engine, _ = _engine(models_dir / tiny_name)
    for case in reference[tiny_name]["cases"]:
        engine.reset()
        logits = engine.prefill(case["prompt_ids"], all_logits=True)
        assert logits.dtype == np.float32
        expected = np.asarray(case["logits"], dtype=np.float32)
        assert logits.shape == expected.shape
        np.testing.assert_allclose(logits, expected, atol=2e-3, rtol=1e-4)


def test_greedy_ids_match_reference(
    models_dir: Path, reference: dict[str, Any], tiny_name: str
) -> None:
    engine, _ = _engine(models_dir / tiny_name)
    for case in reference[tiny_name]["cases"]:
        params = SamplingParams(max_tokens=len(case["greedy_ids"]), ignore_eos=True)
        ids = [ev.token_id for ev in engine.generate(case["prompt_ids"], params)]
        assert ids == case["greedy_ids"]


def test_decode_matches_prefill_of_longer_prompt(models_dir: Path) -> None:
    """KV-cache decode gives the logits a full prefill of the same sequence gives."""
    engine, info = _engine(models_dir / "tiny-qwen2-hf")
    ids = info.tokenizer.encode("Hello world, this is")
    engine.prefill(ids[:-2])
    engine.decode(ids[-2])
    stepped = engine.decode(ids[-1])
    engine.reset()
    full = engine.prefill(ids)
    assert stepped.dtype == full.dtype == np.float32
    np.testing.assert_allclose(stepped, full, atol=1e-4)
