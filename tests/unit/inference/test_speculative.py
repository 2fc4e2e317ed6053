"""Speculative decoding (prompt lookup): the same greedy tokens, events and stops as plain
decoding, in fewer forward passes on text that repeats."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from reconciler.inference.collectives import Array, Collectives
from reconciler.inference.demo import demo_model_path
from reconciler.inference.generate import TokenEvent, generate
from reconciler.inference.inprocess import InProcessGroup
from reconciler.inference.loader import ModelInfo, load_model_info, load_shard
from reconciler.inference.model import Engine
from reconciler.inference.sampling import SamplingParams
from reconciler.inference.sharding import full_share, plan_shares
from tests.inference_ranks import make_engines, make_stage_engines, run_ranks

PROMPTS = ["Hello world, this is a tiny", "one two three four one two three four one two"]
# (model, kernels): the onnxruntime graphs take the position explicitly (see Engine.rewind)
CASES = [
    ("tiny-llama.gguf", "numpy"),
    ("tiny-llama.gguf", "onnxruntime"),
    ("tiny-llama-hf", "numpy"),
    ("tiny-llama-hf", "onnxruntime"),
    ("tiny-qwen2-hf", "numpy"),
    ("tiny-gemma3-hf", "numpy"),  # sliding-window layers
    ("tiny-gemma3-hf", "onnxruntime"),
]


def _engine(
    path: Path, kernels: str, cache_len: int = 160, activations: str = "exact"
) -> tuple[Engine, ModelInfo]:
    info = load_model_info(path)
    share = full_share(info.config)
    weights = load_shard(path, info.config, share, None, kernels, activations)
    return Engine(info.config, weights, cache_len=cache_len), info


def _view(events: list[TokenEvent]) -> list[tuple[int, int, str, str | None]]:
    return [(e.index, e.token_id, e.text, e.finish_reason) for e in events]


INT8_CASES = [("tiny-llama.gguf", "onnxruntime", "int8"), ("tiny-gemma3-hf", "onnxruntime", "int8")]


@pytest.mark.parametrize(
    ("name", "kernels", "activations"), [(*c, "exact") for c in CASES] + INT8_CASES
)
def test_speculative_greedy_equals_plain_greedy(
    models_dir: Path, name: str, kernels: str, activations: str
) -> None:
    engine, info = _engine(models_dir / name, kernels, activations=activations)
    for prompt in PROMPTS:
        ids = info.tokenizer.encode(prompt)
        plain = list(engine.generate(ids, SamplingParams(max_tokens=40), info.tokenizer))
        assert [e.round for e in plain] == list(range(len(plain)))
        for draft in (1, 4, 16):
            params = SamplingParams(max_tokens=40, draft_tokens=draft)
            spec = list(engine.generate(ids, params, info.tokenizer))
            assert _view(spec) == _view(plain), (prompt, draft)
            rounds = [e.round for e in spec]
            assert rounds[0] == 0 and all(0 <= b - a <= 1 for a, b in itertools.pairwise(rounds))
            per_round = np.bincount(rounds)
            assert per_round.max() <= draft + 1 and per_round.min() >= 1


def test_repetitive_text_needs_fewer_than_0_6_rounds_per_token(models_dir: Path) -> None:
    engine, info = _engine(models_dir / "tiny-llama-hf", "numpy")
    ids = info.tokenizer.encode(PROMPTS[1])
    plain = [e.token_id for e in engine.generate(ids, SamplingParams(max_tokens=60))]
    spec = list(engine.generate(ids, SamplingParams(max_tokens=60, draft_tokens=8)))
    assert [e.token_id for e in spec] == plain and len(spec) == 60
    assert spec[-1].round / len(spec) < 0.6  # decode passes (plus the prefill) per token


def test_a_round_costs_once_on_its_first_token(models_dir: Path) -> None:
    engine, info = _engine(models_dir / "tiny-llama-hf", "numpy")
    ticks = iter(float(i) for i in range(100_000))
    params = SamplingParams(max_tokens=30, draft_tokens=8)
    events = list(generate(engine, info.tokenizer.encode(PROMPTS[1]), params,
                           clock=lambda: next(ticks)))  # fmt: skip
    firsts = [e for i, e in enumerate(events) if i == 0 or e.round != events[i - 1].round]
    rest = [e for e in events if e not in firsts]
    assert rest, "no round yielded more than one token"
    assert all(e.step_ms > 0 for e in firsts) and all(e.step_ms == 0 for e in rest)
    assert all(e.comm_ms == 0 and e.bytes_sent == 0 for e in rest)


def _multi_token_round(events: list[TokenEvent]) -> list[TokenEvent]:
    """The events of the first round that yielded three tokens or more."""
    rounds = [e.round for e in events]
    r = next(r for r in rounds if rounds.count(r) >= 3)
    return [e for e in events if e.round == r]


def test_eos_inside_an_accepted_run_ends_there(models_dir: Path) -> None:
    engine, info = _engine(models_dir / "tiny-qwen2-hf", "numpy")
    ids = info.tokenizer.encode(PROMPTS[0])
    free = list(engine.generate(ids, SamplingParams(max_tokens=40, draft_tokens=8)))
    run = _multi_token_round(free)
    seen = {e.token_id for e in free[: run[0].index]}
    target = next(e for e in run[1:] if e.token_id not in seen)  # its first occurrence
    cfg = engine.config
    engine.config = type(cfg)(**{**cfg.__dict__, "eos_ids": (target.token_id,)})
    try:
        plain = list(engine.generate(ids, SamplingParams(max_tokens=40)))
        spec = list(engine.generate(ids, SamplingParams(max_tokens=40, draft_tokens=8)))
    finally:
        engine.config = cfg
    assert _view(spec) == _view(plain)
    assert spec[-1].index == target.index and spec[-1].finish_reason == "eos"
    assert spec[-1].round == spec[-2].round  # it came out of a run, not alone


def test_stop_strings_and_max_tokens_inside_an_accepted_run(models_dir: Path) -> None:
    engine, info = _engine(models_dir / "tiny-qwen2-hf", "numpy")
    ids = info.tokenizer.encode(PROMPTS[0])
    free = list(engine.generate(ids, SamplingParams(max_tokens=40, draft_tokens=8), info.tokenizer))
    run = _multi_token_round(free)
    inside = run[1].index + 1  # a length that ends after the run's second token
    text = "".join(e.text for e in free)
    end = len("".join(e.text for e in free[: run[1].index + 1]))  # where run[1]'s text ends
    assert free[run[1].index].text
    # the shortest text ending there that shows up nowhere before: first seen in run[1]
    stop = next(text[end - k : end] for k in range(1, end + 1)
                if text.find(text[end - k : end]) == end - k)  # fmt: skip
    for params in (
        SamplingParams(max_tokens=inside),
        SamplingParams(max_tokens=40, stop=(stop,)),
    ):
        plain = list(engine.generate(ids, params, info.tokenizer))
        spec_params = SamplingParams(**{**params.__dict__, "draft_tokens": 8})
        spec = list(engine.generate(ids, spec_params, info.tokenizer))
        assert _view(spec) == _view(plain)
        assert spec[-1].index == run[1].index and spec[-1].round == run[0].round
    assert [e.finish_reason for e in spec][-1] == "stop"


def test_a_full_cache_ends_both_ways_at_the_same_token(models_dir: Path) -> None:
    engine, info = _engine(models_dir / "tiny-llama-hf", "onnxruntime", cache_len=40)
    ids = info.tokenizer.encode(PROMPTS[1])
    plain = list(engine.generate(ids, SamplingParams(max_tokens=100)))
    spec = list(engine.generate(ids, SamplingParams(max_tokens=100, draft_tokens=16)))
    assert _view(spec) == _view(plain)
    assert len(spec) == 40 - len(ids) + 1 and spec[-1].finish_reason == "length"


def test_sampled_jobs_ignore_draft_tokens(models_dir: Path) -> None:
    engine, info = _engine(models_dir / "tiny-qwen2-hf", "numpy")
    ids = info.tokenizer.encode(PROMPTS[1])
    sampled = SamplingParams(max_tokens=20, temperature=1.0, seed=5)
    want = list(engine.generate(ids, sampled))
    got = list(engine.generate(ids, SamplingParams(**{**sampled.__dict__, "draft_tokens": 8})))
    assert _view(got) == _view(want) and [e.round for e in got] == list(range(20))


class Recording:
    """Passes collectives through and records every all_gather contribution's shape."""

    def __init__(self, inner: Collectives) -> None:
        self.inner, self.rank, self.world_size = inner, inner.rank, inner.world_size
        self.gathered: list[tuple[int, ...]] = []

    def all_reduce_sum(self, x: Array) -> Array:
        return self.inner.all_reduce_sum(x)

    def all_gather(self, x: Array) -> list[Array]:
        self.gathered.append(x.shape)
        return self.inner.all_gather(x)

    def broadcast(self, x: Array, root: int) -> Array:
        return self.inner.broadcast(x, root)


@pytest.mark.parametrize("kernels", ["numpy", "onnxruntime"])
def test_tensor_parallel_speculative_equals_single_rank_plain(
    models_dir: Path, kernels: str
) -> None:
    path = models_dir / "tiny-llama-hf"
    oracle, info = _engine(path, "numpy")
    ids = info.tokenizer.encode(PROMPTS[1])
    want = [e.token_id for e in oracle.generate(ids, SamplingParams(max_tokens=40))]
    engines = make_engines(path, info.config, [(0, 5000), (5000, 8192)], 8192, 160, kernels,
                           "exact")  # fmt: skip
    for e in engines:
        e.comm = Recording(e.comm)
    params = SamplingParams(max_tokens=40, draft_tokens=8)
    got = run_ranks(engines, lambda e: list(e.generate(ids, params)))
    assert [[e.token_id for e in events] for events in got] == [want, want]
    assert got[0][-1].round < 0.6 * len(want)
    # verify passes gather one (value, id) winner per row, never a slice of the logits
    shapes = {s for e in engines for s in getattr(e.comm, "gathered", [])}
    assert shapes and all(len(s) == 2 and s[1] == 2 for s in shapes)
    assert max(s[0] for s in shapes) > 1  # some pass verified drafts


def test_greedy_rows_across_ranks_pick_the_full_logits_argmax(models_dir: Path) -> None:
    path = models_dir / "tiny-llama.gguf"
    info = load_model_info(path)
    ids = info.tokenizer.encode(PROMPTS[0])
    full = Engine(info.config, load_shard(path, info.config, full_share(info.config)))
    want = np.argmax(full.prefill(ids, all_logits=True), axis=-1)  # [T]
    shares = plan_shares(info.config, [(0, 100), (100, 6000), (6000, 8192)], 8192)
    members = InProcessGroup(3).members()
    engines = [Engine(info.config, load_shard(path, info.config, s), m)
               for s, m in zip(shares, members, strict=True)]  # fmt: skip
    for e in engines:
        e.greedy = True
    rows = run_ranks(engines, lambda e: e.prefill(ids, all_logits=True))
    for r in rows:
        assert r.shape == (len(ids), info.config.vocab)
        assert np.array_equal(np.argmax(r, axis=-1), want)


@pytest.mark.parametrize("name", ["tiny-llama.gguf", "tiny-gemma3-hf"])
def test_int8_rows_of_a_verify_pass_are_the_bits_of_one_row_passes(
    models_dir: Path, name: str
) -> None:
    """With int8 activations a last-bit difference upstream can move a quantization step,
    so drafts keep greedy decoding's tokens only if a row's logits do not depend on how
    many rows share its pass: each row of a many-row pass equals, bit for bit, the
    logits of feeding the same tokens one at a time (sliding-window layers included)."""
    path = models_dir / name
    one, info = _engine(path, "onnxruntime", activations="int8")
    many, _ = _engine(path, "onnxruntime", activations="int8")
    ids = info.tokenizer.encode("one two three four one two three four")
    tail = [5, 9, 13, 17, 21]
    one.prefill(ids)
    singles = np.stack([one.decode(t) for t in tail])  # [5, V]
    many.prefill(ids)
    first = many.decode(tail[0])  # a plain step, then a verify pass of the other four
    rows = many.prefill(tail[1:], all_logits=True)  # [4, V]
    assert np.array_equal(first, singles[0])
    assert np.array_equal(rows, singles[1:])


@pytest.mark.slow
def test_demo_model_speculative_matches_transformers_and_copies_in_few_rounds(
    models_dir: Path,
) -> None:
    """Exact activations: transformers' greedy ids with drafts too; a copy task takes
    fewer than 0.6 passes per token."""
    reference = json.loads((models_dir / "demo_reference.json").read_text())
    engine, info = _engine(demo_model_path(), "onnxruntime", cache_len=256)
    for case in reference["cases"]:
        params = SamplingParams(max_tokens=len(case["greedy_ids"]), ignore_eos=True,
                                draft_tokens=8)  # fmt: skip
        got = [e.token_id for e in engine.generate(case["prompt_ids"], params)]
        assert got == case["greedy_ids"]
    text = (
        "The mesh pools the laptops, desktops and small boards of one home network. Each "
        "device runs an agent that announces itself and joins the pool."
    )
    chat = [{"role": "user", "content": f"Repeat this text exactly:\n\n{text}"}]
    ids = info.tokenizer.encode(info.tokenizer.apply_chat_template(chat), add_special=False)
    plain = [e.token_id for e in engine.generate(ids, SamplingParams(max_tokens=40))]
    spec = list(engine.generate(ids, SamplingParams(max_tokens=40, draft_tokens=8)))
    assert [e.token_id for e in spec] == plain and len(plain) > 20  # it copies the text
    assert spec[-1].round / len(spec) < 0.6


@pytest.mark.parametrize("kernels", ["numpy", "onnxruntime"])
def test_pipeline_stages_speculate_like_a_single_rank(models_dir: Path, kernels: str) -> None:
    """Verify passes through pipeline stages: the stages broadcast one winner per row,
    and the rewind applies to every stage's own cache."""
    path = models_dir / "tiny-llama-hf"
    oracle, info = _engine(path, "numpy")
    ids = info.tokenizer.encode(PROMPTS[1])
    want = [e.token_id for e in oracle.generate(ids, SamplingParams(max_tokens=40))]
    engines = make_stage_engines(path, info.config, [1, 1], 160, kernels, "exact")
    params = SamplingParams(max_tokens=40, draft_tokens=8)
    got = run_ranks(engines, lambda e: list(e.generate(ids, params)))
    assert [[e.token_id for e in events] for events in got] == [want, want]
    assert got[0][-1].round < 0.6 * len(want)
