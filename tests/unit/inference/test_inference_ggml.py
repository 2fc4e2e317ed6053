"""The ggml kernels: matrices held as the file stores them, multiplied where they lie,
against ``gguf.quants.dequantize`` and the numpy engine.

ggml quantizes the activation rows for its quantized dot products (Q8_0, Q8_1 or Q8_K, as
llama.cpp does), so the tolerances are those of the onnxruntime int8 mode."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import gguf
import numpy as np
import pytest
from gguf import GGMLQuantizationType as Q

from reconciler.inference.kernels import blockmatrix, ggml, resolve
from reconciler.inference.kernels.blockmatrix import BlockMatrix
from reconciler.inference.kernels.session import THREADS_ENV
from reconciler.inference.loader import load_model_info, load_shard
from reconciler.inference.model import Engine
from reconciler.inference.quant import QUANT_TYPES, dequantize
from reconciler.inference.sharding import full_share
from reconciler.inference.weights import ShardWeights
from reconciler.jobs.plans import held_sizes, tensor_records
from tests.inference_ranks import make_engines, run_ranks
from tests.unit.inference.test_inference_quant import random_blocks

FLOATS = (Q.F32, Q.F16, Q.BF16)


def _weights(qtype: Q, n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows as stored, the same rows as float32) for any format."""
    if qtype in QUANT_TYPES:
        raw = random_blocks(qtype, n, k, seed)
        return raw, dequantize(raw, qtype)
    values = np.random.default_rng(seed).standard_normal((n, k)).astype(np.float32) * 0.1
    if qtype == Q.F32:
        return values, values
    if qtype == Q.F16:
        return values.astype(np.float16), values.astype(np.float16).astype(np.float32)
    raw = (values.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8).reshape(n, 2 * k)
    return raw, gguf.quants.dequantize(raw, Q.BF16)


def _relative_error(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got - want).max() / np.abs(want).max())


@pytest.mark.parametrize("rows", [1, 3, 40])  # decode, a draft, a prefill chunk (uncached)
@pytest.mark.parametrize("qtype", [*QUANT_TYPES, *FLOATS], ids=lambda q: q.name)
def test_every_format_multiplies_like_dequantized_numpy(qtype: Q, rows: int) -> None:
    stored, dense = _weights(qtype, 48, 512, seed=1)
    x = np.random.default_rng(2).standard_normal((rows, 512)).astype(np.float32)
    matrix = BlockMatrix([(stored, qtype)], threads=2)
    got = matrix.apply(x)
    assert got.shape == (rows, 48) and got.dtype == np.float32
    assert matrix.nbytes == stored.nbytes  # held as stored: no unpacking
    # F32 weights: float32 arithmetic. Quantized and 16-bit: activations rounded per block.
    assert _relative_error(got, x @ dense.T) <= (1e-5 if qtype == Q.F32 else 2e-2)
    np.testing.assert_array_equal(matrix.apply(x), got)  # a reused graph, the same result


def test_rows_of_mixed_formats_concatenate() -> None:
    """Q/K/V of different formats in one matrix: a part per format, outputs side by side."""
    formats = (Q.Q4_K, Q.Q6_K, Q.F16)
    raws = [_weights(t, 16, 256, seed=i) for i, t in enumerate(formats)]
    matrix = BlockMatrix([(r, t) for (r, _), t in zip(raws, formats, strict=True)], 1)
    x = np.random.default_rng(3).standard_normal((2, 256)).astype(np.float32)
    want = np.concatenate([x @ dense.T for _, dense in raws], axis=1)
    assert matrix.shape == (48, 256)
    assert _relative_error(matrix.apply(x), want) <= 2e-2


def test_a_column_share_meets_a_zero_padded_input() -> None:
    """Input columns [40, 200) of a 32-blocked matrix: blocks [32, 224) are held and the
    input is padded with 8 zeros before and 24 after."""
    raw, dense = _weights(Q.Q4_0, 24, 256, seed=4)
    held = raw[:, 1 * 18 : 7 * 18]  # whole blocks 1..6
    matrix = BlockMatrix([(held, Q.Q4_0)], 1, pad=(8, 24))
    x = np.random.default_rng(5).standard_normal((3, 160)).astype(np.float32)
    assert matrix.shape == (24, 160)
    assert _relative_error(matrix.apply(x), x @ dense[:, 40:200].T) <= 2e-2


def test_formats_the_engine_does_not_support_are_refused() -> None:
    """ggml knows Q2_K and the IQ formats, but the engine supports what it tests."""
    raw = np.zeros((4, 84), np.uint8)  # one Q2_K block a row
    with pytest.raises(ValueError, match="Q2_K is not a supported quantization type"):
        BlockMatrix([(raw, Q.Q2_K)], 1)


def test_parts_of_different_widths_are_refused() -> None:
    with pytest.raises(ValueError, match="different widths"):
        BlockMatrix(
            [(_weights(Q.Q4_0, 4, 64, 0)[0], Q.Q4_0), (_weights(Q.Q4_0, 4, 96, 0)[0], Q.Q4_0)], 1
        )


@pytest.fixture
def fresh_library(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """A process whose ggml library is looked up again (and again after the test)."""
    blockmatrix.forget_library()
    yield monkeypatch
    monkeypatch.undo()
    blockmatrix.forget_library()


def test_a_missing_library_is_reported_not_used(
    fresh_library: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fresh_library.setenv(ggml.LIB_ENV, str(tmp_path / "libggml-missing.so"))
    assert not blockmatrix.available()
    with pytest.raises(
        ValueError, match=r"cannot load ggml from .*use --kernels onnxruntime or numpy"
    ):
        resolve("ggml")
    assert resolve("auto") in ("onnxruntime", "numpy")  # auto never needs ggml


def test_turned_off_is_reported(fresh_library: pytest.MonkeyPatch) -> None:
    fresh_library.setenv(ggml.LIB_ENV, "off")
    assert blockmatrix.unavailable_reason() == (
        f"ggml is off or not installed (pip package {ggml.PACKAGE}, or {ggml.LIB_ENV})"
    )


def test_a_library_without_ggml_is_refused(fresh_library: pytest.MonkeyPatch) -> None:
    import ctypes.util

    fresh_library.setenv(ggml.LIB_ENV, ctypes.util.find_library("c") or "libc.so.6")
    assert "lacks ggml functions ggml_init" in str(blockmatrix.unavailable_reason())


def test_exact_activations_are_refused_with_the_ggml_kernels(models_dir: Path) -> None:
    path = models_dir / "tiny-llama.gguf"
    info = load_model_info(path)
    with pytest.raises(ValueError, match="quantize activations to 8 bits"):
        load_shard(path, info.config, full_share(info.config), None, "ggml", "exact", 1)


@pytest.mark.parametrize("name", ["tiny-llama.gguf", "tiny-gemma3.gguf"])
def test_a_share_holds_the_files_bytes_and_its_estimate(models_dir: Path, name: str) -> None:
    """Q4_0, Q4_1, Q8_0 and BF16 matrices (tiny-llama), Q5_0, Q8_0 and F16 (tiny-gemma3):
    each held as stored, and ``held_sizes`` predicts the load to the byte."""
    path = models_dir / name
    info = load_model_info(path)
    shard = load_shard(path, info.config, full_share(info.config), None, "ggml", "int8", 1)
    assert isinstance(shard, ShardWeights) and shard.kernels == "ggml"
    records = tensor_records(path)
    sizes = held_sizes(records, "ggml")
    matrices = sum(sizes[r.name] for r in records if r.rank == 2)
    assert matrices == sum(r.file_bytes for r in records if r.rank == 2 and sizes[r.name])
    norms = sum(r.n_weights * 4 for r in records if r.rank < 2)
    assert shard.nbytes() == matrices + norms


@pytest.mark.parametrize("name", ["tiny-llama.gguf", "tiny-gemma3.gguf"])
def test_the_engine_on_ggml_follows_the_numpy_oracle(models_dir: Path, name: str) -> None:
    path = models_dir / name
    info = load_model_info(path)
    ids = info.tokenizer.encode("Hello world, this is a tiny")
    share = full_share(info.config)
    oracle = Engine(info.config, load_shard(path, info.config, share, kernels="numpy"))
    want = oracle.prefill(ids, all_logits=True)
    engine = Engine(info.config, load_shard(path, info.config, share, None, "ggml", "int8", 1))
    got = engine.prefill(ids, all_logits=True)
    assert _relative_error(got, want) <= 5e-2  # int8's error class (tiny random models)
    assert (
        _relative_error(engine.decode(int(got[-1].argmax())), oracle.decode(int(want[-1].argmax())))
        <= 5e-2
    )


def test_tensor_parallel_ranks_on_ggml_follow_the_oracle(models_dir: Path) -> None:
    """Two uneven ranks: every rank holds the same logits, within int8's error of the
    single-rank numpy oracle (a rank's column share quantizes its own input blocks)."""
    path = models_dir / "tiny-llama.gguf"
    info = load_model_info(path)
    ids = info.tokenizer.encode("Hello world, this is a tiny")
    oracle = Engine(
        info.config, load_shard(path, info.config, full_share(info.config), kernels="numpy")
    )
    want = oracle.prefill(ids, all_logits=True)
    engines = make_engines(path, info.config, [(0, 5000), (5000, 8192)], 8192, 64, "ggml", "int8")
    logits = run_ranks(engines, lambda e: e.prefill(ids, all_logits=True))
    for rank_logits in logits:
        assert _relative_error(rank_logits, want) <= 5e-2
        assert np.array_equal(rank_logits, logits[0])  # bit-identical on every rank


@pytest.mark.parametrize("name", ["tiny-llama.gguf", "tiny-gemma3.gguf"])
def test_rows_of_a_verify_pass_are_the_bits_of_one_token_steps(models_dir: Path, name: str) -> None:
    """Greedy answers stay the same with drafts: each row of a pass of up to 17 tokens
    (the last token and 16 drafts) equals, bit for bit, the logits of feeding the same
    tokens one at a time (sliding-window layers included)."""
    path = models_dir / name
    info = load_model_info(path)
    weights = load_shard(path, info.config, full_share(info.config), None, "ggml", "int8", 2)
    one, many = (
        Engine(info.config, weights, cache_len=64),
        Engine(info.config, weights, cache_len=64),
    )
    ids = info.tokenizer.encode("one two three four one two three four")
    tail = [5 + 4 * j for j in range(17)]
    one.prefill(ids)
    singles = np.stack([one.decode(t) for t in tail])  # [17, V]
    for rows in (2, 16, 17):
        many.reset()
        many.prefill(ids)
        assert np.array_equal(many.prefill(tail[:rows], all_logits=True), singles[:rows])


def test_threads_sharing_a_matrix_get_their_own_products() -> None:
    """Two jobs on one cached shard call the same matrices from two threads."""
    import threading

    stored, _ = _weights(Q.Q4_0, 64, 256, seed=8)
    matrix = BlockMatrix([(stored, Q.Q4_0)], 1)
    inputs = [np.full((1, 256), v, np.float32) for v in (1.0, -2.0)]
    want = [matrix.apply(x) for x in inputs]
    wrong: list[int] = []

    def run(i: int) -> None:
        for _ in range(200):
            if not np.array_equal(matrix.apply(inputs[i]), want[i]):
                wrong.append(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []


def test_one_thread_unless_asked(models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ggml's spinning barriers collapse when another process competes for the cores."""
    path = models_dir / "tiny-llama.gguf"
    info = load_model_info(path)

    def threads() -> set[int]:
        shard = load_shard(path, info.config, full_share(info.config), None, "ggml", "int8")
        assert isinstance(shard, ShardWeights) and isinstance(shard.layers[0].wgu, BlockMatrix)
        return {layer.wgu.threads for layer in shard.layers if isinstance(layer.wgu, BlockMatrix)}

    monkeypatch.delenv(THREADS_ENV, raising=False)
    assert threads() == {1}
    monkeypatch.setenv(THREADS_ENV, "2")
    assert threads() == {2}
    monkeypatch.setenv(THREADS_ENV, "two")
    assert threads() == {1}
