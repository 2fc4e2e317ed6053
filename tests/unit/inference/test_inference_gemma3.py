"""Gemma 3 and SentencePiece on the tiny fixtures, against transformers' recorded outputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from reconciler.inference.gguf_model import field, open_gguf
from reconciler.inference.loader import _TOKENIZER_KEYS, load_model_info, load_shard
from reconciler.inference.model import Engine
from reconciler.inference.sampling import SamplingParams
from reconciler.inference.sharding import full_share
from reconciler.inference.tokenizer import Tokenizer, tokenizer_from_gguf
from tests.inference_ranks import make_engines, run_ranks

TINY = "tiny-gemma3.gguf"
BOTH = pytest.mark.parametrize("name", [TINY, "tiny-gemma3-hf"])


@pytest.fixture(scope="module")
def gemma_reference(models_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((models_dir / "gemma3_reference.json").read_text())
    return data


def _engine(path: Path) -> Engine:
    info = load_model_info(path)
    weights = load_shard(path, info.config, full_share(info.config), activations="exact")
    return Engine(info.config, weights, cache_len=64)


def test_gemma3_metadata_gives_gemma_switches(models_dir: Path) -> None:
    config = load_model_info(models_dir / TINY).config
    assert config.arch == "gemma3" and config.tie_embeddings
    assert config.activation == "gelu_tanh" and config.qk_norm and config.post_norms
    assert config.embed_scale == pytest.approx(8.0)  # sqrt(dim 64)
    assert [config.layer_is_sliding(i) for i in range(6)] == [True] * 5 + [False]
    assert config.sliding_window == 4
    assert config.rope_theta == 1e6 and config.rope_theta_local == 10000.0
    assert config.eos_ids == (1, 5)  # <eos> and <end_of_turn>


def test_gemma3_hf_config_reads_scale_layer_types_and_rope(models_dir: Path) -> None:
    config = load_model_info(models_dir / "tiny-gemma3-hf").config
    assert config.arch == "gemma3" and config.attn_scale == pytest.approx(1 / 8)
    assert [config.layer_is_sliding(i) for i in range(6)] == [True] * 5 + [False]
    assert config.rope_scaling is not None and config.rope_scaling.factor == 2.0
    assert config.rope_theta_local == 10000.0 and config.embed_scale == pytest.approx(8.0)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"model_type": "gemma3"}, "model_type gemma3_text"),  # the vision-language model
        ({"query_pre_attn_scalar": -4}, "query_pre_attn_scalar must be a positive number"),
        ({"layer_types": ["full_attention", "sliding_attention"] * 3}, "regular"),
        ({"final_logit_softcapping": 30.0}, "soft-capping is not supported"),
        ({"rope_parameters": [1, 2], "hidden_size": "wide"}, "bad or missing field"),
    ],
)
def test_gemma3_hf_config_refused_with_the_reason(
    models_dir: Path, tmp_path: Path, change: dict[str, Any], reason: str
) -> None:
    from reconciler.inference.errors import ModelError

    config = json.loads((models_dir / "tiny-gemma3-hf" / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps(config | change))
    with pytest.raises(ModelError, match=reason):
        load_model_info(tmp_path)


@BOTH
def test_gemma3_prefill_logits_match_transformers(
    models_dir: Path, gemma_reference: dict[str, Any], name: str
) -> None:
    engine = _engine(models_dir / name)
    for case in gemma_reference[name]["cases"]:
        engine.reset()
        logits = engine.prefill(case["prompt_ids"], all_logits=True)
        expected = np.asarray(case["logits"], dtype=np.float32)
        assert logits.shape == expected.shape
        np.testing.assert_allclose(logits, expected, atol=2e-3, rtol=1e-4)


@BOTH
def test_gemma3_greedy_ids_match_transformers(
    models_dir: Path, gemma_reference: dict[str, Any], name: str
) -> None:
    """12 tokens after prompts of 4 to 7: the sliding layers' window (4) is exceeded."""
    engine = _engine(models_dir / name)
    for case in gemma_reference[name]["cases"]:
        params = SamplingParams(max_tokens=len(case["greedy_ids"]), ignore_eos=True)
        ids = [ev.token_id for ev in engine.generate(case["prompt_ids"], params)]
        assert ids == case["greedy_ids"]


def test_gemma3_decode_past_the_window_matches_prefill(models_dir: Path) -> None:
    engine = _engine(models_dir / TINY)
    ids = load_model_info(models_dir / TINY).tokenizer.encode("The quick brown fox jumps over")
    ids = ids + ids  # 14 positions, several windows
    engine.prefill(ids[:3])
    for token in ids[3:-1]:
        engine.decode(token)
    stepped = engine.decode(ids[-1])
    engine.reset()
    full = engine.prefill(ids)
    np.testing.assert_allclose(stepped, full, atol=1e-4)


@pytest.mark.parametrize("split", [[(0, 3000), (3000, 8192)], [(0, 1000), (1000, 8192)]])
def test_gemma3_tensor_parallel_matches_single_rank(
    models_dir: Path, split: list[tuple[int, int]]
) -> None:
    """Post-norms see the all-reduced sums, so every rank computes the same stream."""
    path = models_dir / TINY
    info = load_model_info(path)
    ids = info.tokenizer.encode("Hello world")
    oracle = _engine(path)
    want = oracle.prefill(ids, all_logits=True)
    params = SamplingParams(max_tokens=8, ignore_eos=True)
    want_ids = [e.token_id for e in oracle.generate(ids, params)]
    engines = make_engines(path, info.config, split, 8192, cache_len=64, activations="exact")
    for logits in run_ranks(engines, lambda e: e.prefill(ids, all_logits=True)):
        np.testing.assert_allclose(logits, want, atol=1e-4, rtol=1e-5)
    got = run_ranks(engines, lambda e: [ev.token_id for ev in e.generate(ids, params)])
    assert got == [want_ids] * len(engines)


SPM = pytest.mark.parametrize("name", ["tiny-gemma3.gguf", "tiny-spm-llama.gguf"])


def _tokenizer(path: Path) -> Tokenizer:
    """The tokenizer alone (tiny-spm-llama.gguf has no model metadata)."""
    reader = open_gguf(path)
    return tokenizer_from_gguf({k: field(reader, k) for k in _TOKENIZER_KEYS}, path)


@SPM
def test_sentencepiece_tokenizer_matches_transformers(
    models_dir: Path, gemma_reference: dict[str, Any], name: str
) -> None:
    tokenizer = _tokenizer(models_dir / name)
    for case in gemma_reference["tokenizers"][name]:
        assert tokenizer.encode(case["text"]) == case["ids"], case["text"]
        assert tokenizer.decode(case["ids"]) == case["decoded"], case["text"]


@SPM
def test_sentencepiece_stream_decodes_byte_fallback_whole(models_dir: Path, name: str) -> None:
    tokenizer = _tokenizer(models_dir / name)
    text = "Hello naïve 🦙 the lazy dog"
    ids = tokenizer.encode(text, add_special=False)
    stream = tokenizer.stream()
    deltas = [stream.feed(i) for i in ids]
    assert "".join(deltas) == text  # spaces kept between words, Llama's prefix space not
    assert all("\ufffd" not in d for d in deltas)  # partial UTF-8 bytes are held back


def test_gemma3_chat_template_renders_as_transformers(
    models_dir: Path, gemma_reference: dict[str, Any]
) -> None:
    tokenizer = load_model_info(models_dir / TINY).tokenizer
    recorded = gemma_reference[TINY]
    assert tokenizer.apply_chat_template(recorded["conversation"]) == recorded["chat"]
    ids = tokenizer.encode(recorded["chat"], add_special=False)
    assert ids.count(4) == 4 and ids.count(5) == 3  # <start_of_turn>, <end_of_turn> whole


def test_gemma3_gguf_with_bad_window_is_refused(models_dir: Path, tmp_path: Path) -> None:
    import gguf

    from reconciler.inference.errors import ModelError

    reader = gguf.GGUFReader(models_dir / TINY)
    path = tmp_path / "bad.gguf"
    writer = gguf.GGUFWriter(str(path), "gemma3")
    for key, f in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        value = "wide" if key == "gemma3.attention.sliding_window" else f.contents()
        vtype = gguf.GGUFValueType.STRING if value == "wide" else f.types[0]
        sub = f.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(key, value, vtype, sub_type=sub)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ModelError, match="bad gemma3 metadata"):
        load_model_info(path)
