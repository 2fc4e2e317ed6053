"""Pipeline stages (threads + InProcessGroup) against the single-rank oracle: same greedy
tokens, same logits, each stage loading and caching only its layers."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from reconciler.inference import model
from reconciler.inference.collectives import Array, SingleRank
from reconciler.inference.config import ModelConfig
from reconciler.inference.demo import demo_model_path
from reconciler.inference.errors import CollectiveError
from reconciler.inference.inprocess import InProcessGroup
from reconciler.inference.kernels.building import build_fused
from reconciler.inference.kernels.fused import FusedShard
from reconciler.inference.loader import load_config, load_model_info, load_shard, open_source
from reconciler.inference.model import Engine
from reconciler.inference.sampling import SamplingParams
from reconciler.inference.sharding import full_share, plan_stages
from reconciler.inference.weights import ShardWeights, TensorSource, build_shard
from tests.inference_ranks import make_stage_engines, run_ranks

PROMPT = "Hello world, this is a tiny"
GREEDY = SamplingParams(max_tokens=6, ignore_eos=True)


def _fixture_script(models_dir: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_tiny", models_dir / "make_tiny_models.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def deep_models(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny llama with 4 layers (GGUF, quantized, untied; HF, float, tied)."""
    out = tmp_path_factory.mktemp("deep")
    make = _fixture_script(models_dir)
    vars(make)["HERE"] = out
    tok = make.train_tokenizer()
    shape = dict(make.LLAMA, n_layers=4)
    make.write_gguf(tok, shape, seed=11)
    make.write_hf("tiny-llama-hf", "llama", tok, shape, seed=12, tied=True)
    return out


def _oracle(path: Path, kernels: str = "numpy") -> tuple[Engine, list[int]]:
    info = load_model_info(path)
    weights = load_shard(path, info.config, full_share(info.config), None, kernels, "exact")
    return Engine(info.config, weights, cache_len=64), info.tokenizer.encode(PROMPT)


def _same(got: np.ndarray, want: np.ndarray, kernels: str) -> bool:
    """numpy: the same bits. onnxruntime: a graph ends at a stage boundary, where the
    residual add and the next norm are two nodes instead of one fused node, so the last
    bits may differ (the tokens may not: the tests check them exactly)."""
    if kernels == "numpy":
        return bool(np.array_equal(got, want))
    return bool(np.allclose(got, want, rtol=1e-5, atol=1e-5))


def _greedy(engines: list[Engine], ids: list[int]) -> list[list[int]]:
    return run_ranks(engines, lambda e: [ev.token_id for ev in e.generate(ids, GREEDY)])


@pytest.mark.parametrize("kernels", ["numpy", "onnxruntime"])
@pytest.mark.parametrize("counts", [[1, 1]])
@pytest.mark.parametrize("name", ["tiny-llama.gguf", "tiny-llama-hf"])
def test_two_stages_give_the_single_rank_tokens(
    models_dir: Path, name: str, counts: list[int], kernels: str
) -> None:
    path = models_dir / name
    oracle, ids = _oracle(path, kernels)
    want_logits = oracle.prefill(ids, all_logits=True)
    want = [e.token_id for e in oracle.generate(ids, GREEDY)]
    engines = make_stage_engines(path, oracle.config, counts, 64, kernels, "exact")
    logits = run_ranks(engines, lambda e: e.prefill(ids, all_logits=True))
    for rank_logits in logits:
        assert rank_logits.dtype == np.float32
        assert _same(rank_logits, want_logits, kernels)
    assert _greedy(engines, ids) == [want] * len(counts)


@pytest.mark.parametrize("kernels", ["numpy", "onnxruntime"])
@pytest.mark.parametrize("counts", [[1, 3], [3, 1], [2, 1, 1], [1, 2, 1], [1, 1, 1, 1]])
@pytest.mark.parametrize("name", ["tiny-llama.gguf", "tiny-llama-hf"])
def test_uneven_stages_give_the_single_rank_tokens(
    deep_models: Path, name: str, counts: list[int], kernels: str
) -> None:
    path = deep_models / name
    oracle, ids = _oracle(path, kernels)
    want = [e.token_id for e in oracle.generate(ids, GREEDY)]
    assert len(set(want)) > 1  # the fixture is not degenerate
    engines = make_stage_engines(path, oracle.config, counts, 64, kernels, "exact")
    assert [e.cache_k.shape[0] for e in engines] == counts  # each caches its own layers
    assert _greedy(engines, ids) == [want] * len(counts)


@pytest.mark.parametrize("kernels", ["numpy", "onnxruntime"])
def test_gemma3_stages_match(models_dir: Path, kernels: str) -> None:
    """Sliding and global layers, post-norms, QK-norm and the embedding scale, cut 2/1/3."""
    path = models_dir / "tiny-gemma3-hf"
    oracle, ids = _oracle(path, kernels)
    want = oracle.prefill(ids, all_logits=True)
    engines = make_stage_engines(path, oracle.config, [2, 1, 3], 64, kernels, "exact")
    for got in run_ranks(engines, lambda e: e.prefill(ids, all_logits=True)):
        assert _same(got, want, kernels)


def test_sampled_tokens_match_the_single_rank(deep_models: Path) -> None:
    path = deep_models / "tiny-llama-hf"
    oracle, ids = _oracle(path)
    params = SamplingParams(max_tokens=8, temperature=1.5, top_p=0.95, seed=7, ignore_eos=True)
    want = [e.token_id for e in oracle.generate(ids, params)]
    engines = make_stage_engines(path, oracle.config, [2, 1, 1], 64, "numpy")
    got = run_ranks(engines, lambda e: [ev.token_id for ev in e.generate(ids, params)])
    assert got == [want] * 3


def test_a_long_prompt_runs_in_chunks(deep_models: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Several forward passes before the logits (prefill chunks) stay in step."""
    monkeypatch.setattr(model, "PREFILL_CHUNK", 3)
    path = deep_models / "tiny-llama.gguf"
    oracle, ids = _oracle(path)
    want = [e.token_id for e in oracle.generate(ids, GREEDY)]
    engines = make_stage_engines(path, oracle.config, [1, 2, 1], 64, "numpy")
    assert len(ids) > 2 * 3
    assert _greedy(engines, ids) == [want] * 3


def test_greedy_decoding_sends_only_the_winner(deep_models: Path) -> None:
    path = deep_models / "tiny-llama.gguf"
    config = load_config(path)
    engines = make_stage_engines(path, config, [2, 2], 64, "numpy")
    ids = load_model_info(path).tokenizer.encode(PROMPT)
    events = run_ranks(engines, lambda e: list(e.generate(ids, GREEDY)))
    first, last = events
    assert all(ev.bytes_sent == 4 * config.dim for ev in first[1:])  # one hidden row
    assert all(ev.bytes_sent == 8 for ev in last[1:])  # one (value, id)


def test_stages_load_only_their_layers(deep_models: Path) -> None:
    path = deep_models / "tiny-llama.gguf"
    config = load_config(path)
    full = load_shard(path, config, full_share(config), kernels="numpy").nbytes()
    stages = plan_stages(config, [1, 3])
    sizes = [load_shard(path, config, s, kernels="numpy").nbytes() for s in stages]
    assert sum(sizes) == full  # untied: nothing is held twice
    packed = [load_shard(path, config, s, kernels="onnxruntime").nbytes() for s in stages]
    full_packed = load_shard(path, config, full_share(config), kernels="onnxruntime").nbytes()
    assert abs(sum(packed) - full_packed) <= 4 * config.dim  # the final norm, once
    for size, whole in ((sizes, full), (packed, full_packed)):
        assert size[0] < 0.6 * whole  # embedding + 1 of 4 layers, not the other 3


class Recording:
    """A TensorSource that records which tensors were read."""

    def __init__(self, inner: TensorSource) -> None:
        self.inner, self.read = inner, set[str]()

    def has(self, name: str) -> bool:
        return self.inner.has(name)

    def __getattr__(self, method: str) -> Any:
        inner = getattr(self.inner, method)
        if method not in ("rows", "cols", "vector", "raw_rows", "raw_cols", "qtype"):
            return inner

        def read(name: str, *args: Any) -> Any:
            self.read.add(name)
            return inner(name, *args)

        return read


@pytest.mark.parametrize("kernels", ["numpy", "onnxruntime"])
@pytest.mark.parametrize("name", ["tiny-llama.gguf", "tiny-llama-hf"])
def test_a_stage_reads_no_other_stage_tensor(deep_models: Path, name: str, kernels: str) -> None:
    path = deep_models / name
    config = load_config(path)
    first, middle, last = plan_stages(config, [1, 2, 1])
    build = _builder(kernels)
    held = {}
    for stage in (first, middle, last):
        source = Recording(open_source(path, config))
        build(source, config, stage)
        held[stage.rank] = source.read
    layers = {
        r: {int(m[1]) for n in names if (m := re.match(r"(\d+)\.", n))} for r, names in held.items()
    }
    assert layers == {0: {0}, 1: {1, 2}, 2: {3}}
    assert {n for n in held[0] if not n[0].isdigit()} == {"embed"}
    assert {n for n in held[1] if not n[0].isdigit()} == set()
    tied = "embed" if name == "tiny-llama-hf" else "lm_head"  # the HF fixture is tied
    assert {n for n in held[2] if not n[0].isdigit()} == {"norm", tied}


def _builder(kernels: str) -> Any:
    if kernels == "numpy":
        return build_shard
    return lambda source, config, share: build_fused(source, config, share, False, 1)


def test_plan_stages_cuts_contiguous_full_width_ranges() -> None:
    config = _config(n_layers=10)
    stages = plan_stages(config, [3, 5, 2])
    assert [(s.layer_start, s.layer_end) for s in stages] == [(0, 3), (3, 8), (8, 10)]
    assert [(s.has_embed, s.has_head) for s in stages] == [(True, False), (False, False),
                                                            (False, True)]  # fmt: skip
    for s in stages:
        assert (s.rank, s.world_size) == (stages.index(s), 3) and s.pipelined
        assert (s.kv_start, s.kv_end) == (0, config.n_kv_heads)
        assert (s.ffn_start, s.ffn_end) == (0, config.hidden_dim)
    assert plan_stages(config, [10])[0].layers(10) == range(10)
    assert not full_share(config).pipelined and full_share(config).layers(10) == range(10)


@pytest.mark.parametrize(
    ("counts", "message"),
    [
        ([], "empty"),
        ([5, 0, 5], "at least one layer"),
        ([4, 5], "sum to 9"),
        ([6, 6], "sum to 12"),
        ([11, -1], "at least one layer"),
    ],
)
def test_plan_stages_refuses_bad_counts(counts: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plan_stages(_config(n_layers=10), counts)


def test_a_stage_must_run_on_its_own_rank(models_dir: Path) -> None:
    path = models_dir / "tiny-llama.gguf"
    config = load_config(path)
    stages = plan_stages(config, [1, 1])
    weights = load_shard(path, config, stages[1], kernels="numpy")
    with pytest.raises(ValueError, match="stage 1 of 2"):
        Engine(config, weights, SingleRank())
    with pytest.raises(ValueError, match="stage 1 of 2"):
        Engine(config, weights, InProcessGroup(2).members()[0])


class Peer:
    """One rank of two whose peer's broadcasts are ``lie``."""

    world_size = 2

    def __init__(self, rank: int, lie: Array) -> None:
        self.rank, self.lie = rank, lie

    def all_reduce_sum(self, x: Array) -> Array:
        raise AssertionError("a pipeline stage never all-reduces")

    def all_gather(self, x: Array) -> list[Array]:
        raise AssertionError("a pipeline stage never all-gathers")

    def broadcast(self, x: Array, root: int) -> Array:
        return x if root == self.rank else self.lie


def f32(*values: float) -> Array:
    return np.array(values, dtype=np.float32)


@pytest.mark.parametrize(
    ("lie", "greedy"),
    [
        (f32(1e30, 1e9)[None], True),
        (f32(1e30, np.nan)[None], True),
        (f32(1e30, 2.5)[None], True),
        (np.zeros((1, 3), np.float32), True),
        (np.zeros((1, 7), np.float32), False),
        (np.zeros((1, 320), np.float16), False),
    ],
    ids=["beyond-vocab", "nan", "fraction", "wrong-shape", "narrow-logits", "float16"],
)
def test_forged_logits_from_the_last_stage_are_refused(
    models_dir: Path, lie: Array, greedy: bool
) -> None:
    path = models_dir / "tiny-llama.gguf"
    config = load_config(path)
    weights = load_shard(path, config, plan_stages(config, [1, 1])[0], kernels="numpy")
    engine = Engine(config, weights, Peer(0, lie), cache_len=16)
    engine.greedy = greedy
    with pytest.raises(CollectiveError):
        engine.prefill([1, 2, 3])


def test_a_forged_hidden_state_is_refused(models_dir: Path) -> None:
    path = models_dir / "tiny-llama.gguf"
    config = load_config(path)
    weights = load_shard(path, config, plan_stages(config, [1, 1])[1], kernels="numpy")
    engine = Engine(config, weights, Peer(1, np.zeros((2, config.dim), np.float32)), 16)
    with pytest.raises(CollectiveError, match="hidden state"):
        engine.prefill([1, 2, 3])  # three rows expected


def test_shards_hold_nothing_they_do_not_need(models_dir: Path) -> None:
    path = models_dir / "tiny-llama.gguf"
    config = load_config(path)
    first, last = plan_stages(config, [1, 1])
    w0 = load_shard(path, config, first, kernels="numpy")
    w1 = load_shard(path, config, last, kernels="onnxruntime")
    assert isinstance(w0, ShardWeights) and isinstance(w1, FusedShard)
    assert w0.lm_head.shape == (0, config.dim) and w0.norm.shape == (0,)
    assert len(w0.layers) == 1 and w1.embed.nbytes == 0 and w1.heads


def _config(n_layers: int) -> ModelConfig:
    return ModelConfig(arch="llama", vocab=100, dim=64, n_layers=n_layers, n_heads=4,
                       n_kv_heads=2, head_dim=16, hidden_dim=96, norm_eps=1e-5,
                       rope_theta=1e4, max_seq=64, tie_embeddings=True)  # fmt: skip


@pytest.mark.slow
def test_demo_model_two_stages_match_local() -> None:
    """SmolLM2-135M cut 11/19, exact activations: the single rank's greedy tokens."""
    path = demo_model_path()
    oracle, _ = _oracle(path, "onnxruntime")
    ids = load_model_info(path).tokenizer.encode("The capital of France is")
    params = SamplingParams(max_tokens=8, ignore_eos=True)
    want = [e.token_id for e in oracle.generate(ids, params)]
    del oracle
    engines = make_stage_engines(path, load_config(path), [11, 19], 64, "onnxruntime", "exact")
    got = run_ranks(engines, lambda e: [ev.token_id for ev in e.generate(ids, params)])
    assert got == [want, want]


def test_in_process_broadcast_is_one_hop() -> None:
    """The root posts and goes on (it never waits for the receivers); each receiver gets
    its own copy of the root's array, call by call."""
    root, other = InProcessGroup(2, timeout=5.0).members()
    sent = [np.full((1, 3), k, dtype=np.float32) for k in range(3)]
    for x in sent:  # three calls ahead of the receiver, with no thread to meet it
        assert root.broadcast(x, root=0) is x
    got = [other.broadcast(np.zeros(0, np.float32), root=0) for _ in sent]
    assert [g.tolist() for g in got] == [x.tolist() for x in sent]
    got[0][0, 0] = 99.0
    assert sent[0][0, 0] == 0.0


def test_in_process_broadcast_refuses_a_disputed_root_and_an_abort() -> None:
    group = InProcessGroup(3, timeout=5.0)
    a, b, c = group.members()
    a.broadcast(np.ones(2, np.float32), root=0)
    with pytest.raises(CollectiveError, match="root 0, expected 2"):
        b.broadcast(np.zeros(0, np.float32), root=2)
    group.abort()
    with pytest.raises(CollectiveError, match="group broken"):
        c.broadcast(np.zeros(0, np.float32), root=1)
    with pytest.raises(ValueError, match="root 3"):
        c.broadcast(np.zeros(0, np.float32), root=3)


@pytest.mark.parametrize("kernels", ["numpy", "onnxruntime"])
def test_one_stage_is_the_single_rank(models_dir: Path, kernels: str) -> None:
    path = models_dir / "tiny-llama.gguf"
    oracle, ids = _oracle(path, kernels)
    want = oracle.prefill(ids, all_logits=True)
    (stage,) = plan_stages(oracle.config, [oracle.config.n_layers])
    weights = load_shard(path, oracle.config, stage, None, kernels, "exact")
    engine = Engine(oracle.config, weights, SingleRank(), cache_len=64)
    assert np.array_equal(engine.prefill(ids, all_logits=True), want)
