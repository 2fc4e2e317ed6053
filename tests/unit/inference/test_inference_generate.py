"""Streaming generation, stop conditions, timings, tokenizers and chat templates."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from reconciler.inference.collectives import Array, SingleRank
from reconciler.inference.generate import generate
from reconciler.inference.loader import ModelInfo, load_model_info, load_shard
from reconciler.inference.model import Engine
from reconciler.inference.sampling import SamplingParams
from reconciler.inference.sharding import full_share
from reconciler.inference.weights import ShardWeights


@pytest.fixture(scope="module")
def qwen(models_dir: Path) -> tuple[Engine, ModelInfo]:
    info = load_model_info(models_dir / "tiny-qwen2-hf")
    weights = load_shard(info.path, info.config, full_share(info.config), kernels="numpy")
    return Engine(info.config, weights, cache_len=48), info


def _ids(qwen: tuple[Engine, ModelInfo]) -> list[int]:
    return qwen[1].tokenizer.encode("Hello world")


class _SlowLink(SingleRank):
    """A world of one whose every all-reduce takes 0.25 s of the test's clock."""

    def __init__(self, now: list[float]) -> None:
        self.now, self.calls = now, 0

    def all_reduce_sum(self, x: Array) -> Array:
        self.calls += 1
        self.now[0] += 0.25
        return x


def test_events_stream_text_and_timings(
    qwen: tuple[Engine, ModelInfo], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pass's step_ms is its whole duration and comm_ms the part spent in collectives,
    on a fake clock that moves 1 s per forward pass (compute) and 0.25 s per all-reduce."""
    engine, info = qwen
    now = [0.0]
    link = _SlowLink(now)
    prefill, decode = engine.prefill, engine.decode

    def computing(step: Callable[..., Array]) -> Callable[..., Array]:
        def timed(*args: Any) -> Array:
            now[0] += 1.0
            return step(*args)

        return timed

    monkeypatch.setattr(engine, "prefill", computing(prefill))
    monkeypatch.setattr(engine, "decode", computing(decode))
    monkeypatch.setattr(engine, "comm", link)
    params = SamplingParams(max_tokens=5, ignore_eos=True)
    events, reduces = [], [0]
    for event in generate(engine, _ids(qwen), params, info.tokenizer, clock=lambda: now[0]):
        events.append(event)
        reduces.append(link.calls)
    assert [e.index for e in events] == list(range(5))
    assert [e.finish_reason for e in events] == [None] * 4 + ["length"]
    assert "".join(e.text for e in events) == info.tokenizer.decode([e.token_id for e in events])
    per_pass = [after - before for before, after in itertools.pairwise(reduces)]
    assert all(n > 0 for n in per_pass)
    assert [e.comm_ms for e in events] == [250.0 * n for n in per_pass]
    assert all(e.compute_ms == 1000.0 and e.bytes_sent == 0 for e in events)
    assert events[0].step_ms == events[0].prefill_ms and events[0].prompt_tokens == 4
    assert engine.comm is link  # generate hands the engine its own collectives back


def test_eos_stops_generation(qwen: tuple[Engine, ModelInfo]) -> None:
    engine, info = qwen
    free = [e.token_id for e in engine.generate(_ids(qwen), SamplingParams(max_tokens=4))]
    engine.config = cfg = type(engine.config)(**{**engine.config.__dict__, "eos_ids": (free[2],)})
    try:
        events = list(engine.generate(_ids(qwen), SamplingParams(max_tokens=4)))
    finally:
        engine.config = type(cfg)(**{**cfg.__dict__, "eos_ids": info.config.eos_ids})
    assert [e.token_id for e in events] == free[:3]
    assert events[-1].finish_reason == "eos" and events[-1].text == ""


def test_stop_string_truncates_and_holds_back(qwen: tuple[Engine, ModelInfo]) -> None:
    engine, info = qwen
    params = SamplingParams(max_tokens=8, ignore_eos=True)
    full = "".join(e.text for e in engine.generate(_ids(qwen), params, info.tokenizer))
    stop = full[3:6]
    assert len(stop) == 3 and full.find(stop) == 3
    events = list(
        engine.generate(_ids(qwen), SamplingParams(max_tokens=8, stop=(stop,)), info.tokenizer)
    )
    assert "".join(e.text for e in events) == full[:3]
    assert events[-1].finish_reason == "stop"


def test_cache_full_ends_with_length(qwen: tuple[Engine, ModelInfo]) -> None:
    engine, _ = qwen
    events = list(engine.generate(_ids(qwen), SamplingParams(max_tokens=100, ignore_eos=True)))
    assert len(events) == engine.cache_len - len(_ids(qwen)) + 1
    assert events[-1].finish_reason == "length"
    with pytest.raises(ValueError, match="exceeds the cache"):
        engine.decode(1)


def test_activations_stay_float32(qwen: tuple[Engine, ModelInfo]) -> None:
    engine, _ = qwen
    engine.reset()
    assert engine.prefill(_ids(qwen)).dtype == np.float32
    assert engine.decode(5).dtype == np.float32
    assert engine.cache_k.dtype == engine.cache_v.dtype == np.float32
    weights = engine.weights
    assert isinstance(weights, ShardWeights)  # the numpy kernels
    for layer in weights.layers:
        assert isinstance(layer.wqkv, np.ndarray) and isinstance(layer.wgu, np.ndarray)
        assert isinstance(layer.wdown, np.ndarray)
        assert layer.wqkv.dtype == layer.wgu.dtype == layer.wdown.dtype == np.float32
        assert layer.wqkv.flags["C_CONTIGUOUS"] and layer.wgu.flags["C_CONTIGUOUS"]


def test_gguf_tokenizer_adds_bos_and_keeps_specials(models_dir: Path) -> None:
    tok = load_model_info(models_dir / "tiny-llama.gguf").tokenizer
    assert tok.encode("Hello")[0] == tok.bos_id == 1
    assert tok.encode("Hello", add_special=False)[0] != 1
    ids = tok.encode("<|im_start|>user", add_special=False)
    assert ids[0] == 2 and tok.decode(ids) == "user"


def test_chat_template(models_dir: Path) -> None:
    tok = load_model_info(models_dir / "tiny-llama-hf").tokenizer
    text = tok.apply_chat_template([{"role": "user", "content": "Hello"}])
    assert text == "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"


def test_incremental_decoder_holds_partial_utf8(models_dir: Path) -> None:
    tok = load_model_info(models_dir / "tiny-llama-hf").tokenizer
    ids = tok.encode("Héllo wörld ✓ done", add_special=False)
    stream = tok.stream()
    deltas = [stream.feed(i) for i in ids]
    assert "".join(deltas) == "Héllo wörld ✓ done"
    assert all("\ufffd" not in d for d in deltas)
