"""The real demo model (SmolLM2-135M-Instruct Q4_1) reproduces transformers' greedy ids."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from reconciler.inference.demo import demo_model_path
from reconciler.inference.loader import load_model_info, load_shard
from reconciler.inference.model import Engine
from reconciler.inference.sampling import SamplingParams
from reconciler.inference.sharding import full_share
from reconciler.inference.weights import ShardWeights


@pytest.mark.slow
@pytest.mark.parametrize("kernels", ["numpy", "onnxruntime"])
def test_demo_model_matches_transformers(models_dir: Path, kernels: str) -> None:
    """Both kernels, exact activations: transformers' greedy ids, token for token."""
    reference = json.loads((models_dir / "demo_reference.json").read_text())
    path = demo_model_path()
    info = load_model_info(path)
    assert info.config.arch == "llama" and info.config.tie_embeddings
    weights = load_shard(path, info.config, full_share(info.config), kernels=kernels,
                         activations="exact")  # fmt: skip
    engine = Engine(info.config, weights, cache_len=64)
    for case in reference["cases"]:
        assert info.tokenizer.encode(case["prompt"]) == case["prompt_ids"]
        params = SamplingParams(max_tokens=len(case["greedy_ids"]), ignore_eos=True)
        events = list(engine.generate(case["prompt_ids"], params, info.tokenizer))
        assert [e.token_id for e in events] == case["greedy_ids"]
        text = "".join(e.text for e in events)
        assert text == info.tokenizer.decode(case["greedy_ids"])
    if isinstance(weights, ShardWeights):
        assert weights.embed.dtype == np.float32
    else:  # quantized in memory: 4.5-bit layers, the tied Q8_0 matrix as two nibbles
        assert weights.nbytes() < 0.25 * 4 * 135e6


def test_demo_int8_activations_agree_with_exact() -> None:
    """int8 activations keep the greedy continuation of a plain prompt (the figure over a
    prompt set is in bench/inference.py)."""
    path = demo_model_path()
    info = load_model_info(path)
    ids = info.tokenizer.encode("The capital of France is")
    runs = []
    for activations in ("exact", "int8"):
        weights = load_shard(path, info.config, full_share(info.config), kernels="onnxruntime",
                             activations=activations)  # fmt: skip
        engine = Engine(info.config, weights, cache_len=32)
        runs.append([e.token_id for e in engine.generate(ids, SamplingParams(max_tokens=4))])
    assert runs[0] == runs[1]


def test_demo_chat_template_renders() -> None:
    info = load_model_info(demo_model_path())
    text = info.tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}])
    assert text.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    ids = info.tokenizer.encode(text)
    assert ids.count(1) == 3  # <|im_start|> stays one special token (id 1), three times
