"""Finding 8: hostile model files are refused with a clear ModelError, before the
libraries that read them allocate what they declare.

GGUF sizes are bounded before gguf's reader runs (a 2 MB file of 262,144 empty strings
took seconds and hundreds of MB in it); safetensors header lengths and offsets are
checked; an index cannot name files outside the model directory; tensors must have
the shapes the configuration implies."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import gguf
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.inference.demo import demo_model_path
from reconciler.inference.errors import ModelError
from reconciler.inference.filecheck import check_gguf, element_budget
from reconciler.inference.loader import load_config, load_model_info, load_shard
from reconciler.inference.sharding import full_share

STRING, ARRAY, UINT32, INT32 = 8, 9, 4, 5


def kv(key: str, kind: int, payload: bytes) -> bytes:
    return struct.pack("<Q", len(key)) + key.encode() + struct.pack("<I", kind) + payload


def gguf_file(path: Path, kvs: list[bytes], tensors: list[bytes] = (), version: int = 3) -> Path:  # type: ignore[assignment]
    header = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs))
    path.write_bytes(header + b"".join(kvs) + b"".join(tensors))
    return path


def tensor_info(name: str, dims: list[int], kind: int = 0) -> bytes:
    return (struct.pack("<Q", len(name)) + name.encode() + struct.pack("<I", len(dims))
            + b"".join(struct.pack("<Q", d) for d in dims) + struct.pack("<IQ", kind, 0))  # fmt: skip


@pytest.fixture
def reader_calls(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Records every file gguf's reader is asked to parse."""
    calls: list[Path] = []
    real = gguf.GGUFReader

    def spy(path: Path, *args: object, **kwargs: object) -> gguf.GGUFReader:
        calls.append(Path(path))
        return real(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(gguf, "GGUFReader", spy)
    return calls


def test_a_small_file_of_many_strings_is_refused_before_parsing(
    tmp_path: Path, reader_calls: list[Path]
) -> None:
    count = 262_144  # 2 MB of empty strings
    strings = struct.pack("<IQ", STRING, count) + struct.pack("<Q", 0) * count
    path = gguf_file(tmp_path / "strings.gguf", [kv("tokenizer.ggml.tokens", ARRAY, strings)])
    assert 2_000_000 < path.stat().st_size < 2_200_000 and count > element_budget(2_200_000)
    with pytest.raises(ModelError, match="refused GGUF file: an array of 262144 elements"):
        load_model_info(path)
    assert reader_calls == []


@pytest.mark.parametrize(
    ("kvs", "tensors", "reason"),
    [
        ([kv("a", ARRAY, struct.pack("<IQ", ARRAY, 1) + struct.pack("<IQ", UINT32, 1))], [],
         "nested arrays"),
        ([kv("a", ARRAY, struct.pack("<IQ", INT32, 1 << 12))], [], "past the end of the file"),
        ([kv("a", STRING, struct.pack("<Q", 1 << 40))], [], "a string of"),
        ([kv("a", 99, b"")], [], "unknown metadata value type"),
        ([], [tensor_info("t", [4, 4, 4, 4, 4])], "5 dimensions"),
        ([], [tensor_info("t", [1 << 30, 1 << 30])], "a tensor of shape"),
        ([], [tensor_info("t", [4, 0])], "a tensor of shape"),
        ([], [tensor_info("t", [4], kind=1234)], "unknown tensor type"),
    ],
)  # fmt: skip
def test_implausible_gguf_declarations_are_refused(
    tmp_path: Path, reader_calls: list[Path], kvs: list[bytes], tensors: list[bytes], reason: str
) -> None:
    path = gguf_file(tmp_path / "bad.gguf", kvs, tensors)
    with pytest.raises(ModelError, match=reason):
        load_config(path)
    assert reader_calls == []


def test_too_many_tensors_or_entries_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "count.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 1 << 40, 0) + b"\0" * 64)
    with pytest.raises(ModelError, match="tensors and 0 metadata entries"):
        load_config(path)
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 1, 0, 0) + b"\0" * 64)
    with pytest.raises(ModelError, match="GGUF version 1"):
        load_config(path)


def test_real_models_pass_the_checks(models_dir: Path) -> None:
    for path in (models_dir / "tiny-llama.gguf", demo_model_path()):
        check_gguf(path)
        assert load_config(path).n_layers > 0


def _copy(models_dir: Path, tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copytree(models_dir / name, target)
    return target


def test_a_safetensors_header_length_beyond_the_file_is_refused(
    models_dir: Path, tmp_path: Path
) -> None:
    d = _copy(models_dir, tmp_path, "tiny-llama-hf")
    weights = d / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[:8] = struct.pack("<Q", 1 << 40)
    weights.write_bytes(bytes(data))
    config = load_config(d)
    with pytest.raises(ModelError, match="refused safetensors file: a header of 1099511627776"):
        load_shard(d, config, full_share(config))


def test_safetensors_offsets_must_match_dtype_and_shape(models_dir: Path, tmp_path: Path) -> None:
    d = _copy(models_dir, tmp_path, "tiny-llama-hf")
    weights = d / "model.safetensors"
    raw = weights.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + length])
    name = "model.norm.weight"
    header[name]["shape"] = [1 << 20]  # claims a million floats in 256 bytes
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    weights.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + length :])
    config = load_config(d)
    with pytest.raises(ModelError, match=f"tensor {name} F32\\[1048576\\] does not fit"):
        load_shard(d, config, full_share(config))


@pytest.mark.parametrize("target", ["../outside.safetensors", "/etc/passwd", "sub/../../x"])
def test_weight_map_paths_stay_inside_the_model_directory(
    models_dir: Path, tmp_path: Path, target: str
) -> None:
    d = _copy(models_dir, tmp_path, "tiny-qwen2-hf")
    index = d / "model.safetensors.index.json"
    document = json.loads(index.read_text())
    first = next(iter(document["weight_map"]))
    shutil.copy(d / document["weight_map"][first], tmp_path / "outside.safetensors")
    document["weight_map"][first] = target
    index.write_text(json.dumps(document))
    config = load_config(d)
    with pytest.raises(ModelError, match="only files inside the model directory"):
        load_shard(d, config, full_share(config))


def test_tensor_shapes_must_match_the_configuration(models_dir: Path, tmp_path: Path) -> None:
    d = _copy(models_dir, tmp_path, "tiny-llama-hf")
    config_file = d / "config.json"
    config_file.write_text(json.dumps({**json.loads(config_file.read_text()),
                                       "intermediate_size": 128}))  # fmt: skip
    config = load_config(d)
    with pytest.raises(ModelError, match=r"mlp\.gate_proj\.weight has shape \[96, 64\], the "
                                         r"configuration implies \[128, 64\]"):  # fmt: skip
        load_shard(d, config, full_share(config))


def test_a_gguf_embedding_smaller_than_the_vocabulary_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "short-embedding.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    for key, value in (("embedding_length", 8), ("attention.head_count", 2),
                       ("block_count", 1), ("feed_forward_length", 16),
                       ("vocab_size", 64)):  # fmt: skip
        writer.add_uint32(f"llama.{key}", value)
    writer.add_float32("llama.attention.layer_norm_rms_epsilon", 1e-5)
    writer.add_tensor("token_embd.weight", np.ones((4, 8), dtype=np.float32))  # 4 rows, not 64
    writer.add_tensor("output_norm.weight", np.ones(8, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    config = load_config(path)
    with pytest.raises(ModelError, match=r"token_embd\.weight has shape \[4, 8\]"):
        load_shard(path, config, full_share(config))


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.lists(
        st.one_of(
            st.binary(max_size=24),
            st.integers(0, 2**64 - 1).map(lambda n: struct.pack("<Q", n)),
            st.integers(0, 12).map(lambda n: struct.pack("<I", n)),
        ),
        max_size=24,
    ).map(b"".join),
    counts=st.tuples(st.integers(0, 3), st.integers(0, 3)),
)
def test_any_gguf_header_is_checked_or_refused_never_crashes(
    tmp_path: Path, body: bytes, counts: tuple[int, int]
) -> None:
    """Whatever follows the magic, the check answers with ModelError or lets it through;
    it never raises anything else."""
    path = tmp_path / "fuzz.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, *counts) + body)
    try:
        check_gguf(path)
    except ModelError as err:
        assert "refused GGUF file" in str(err)
