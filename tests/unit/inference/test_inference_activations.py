"""Which activations a shard runs with: int8 unless asked (the flag, or the agents' env)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.inference.kernels import ACTIVATIONS_ENV
from reconciler.inference.kernels.fused import FusedShard
from reconciler.inference.loader import load_model_info, load_shard
from reconciler.inference.sharding import full_share


def _int8(path: Path, activations: str | None = None) -> bool:
    info = load_model_info(path)
    shard = load_shard(path, info.config, full_share(info.config), None, "onnxruntime",
                       activations, 1)  # fmt: skip
    assert isinstance(shard, FusedShard)
    return shard.int8


def test_int8_is_the_default(models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ACTIVATIONS_ENV, raising=False)
    assert _int8(models_dir / "tiny-llama.gguf")
    assert not _int8(models_dir / "tiny-llama.gguf", "exact")


def test_agents_environment_chooses_exact(
    models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ACTIVATIONS_ENV, "exact")
    assert not _int8(models_dir / "tiny-llama.gguf")
    assert _int8(models_dir / "tiny-llama.gguf", "int8")


def test_unknown_activations_are_refused(models_dir: Path) -> None:
    with pytest.raises(ValueError, match="choose from exact, int8"):
        _int8(models_dir / "tiny-llama.gguf", "int4")
