"""Every GGUF block format: unpacked codes, and quantized matmuls on both kernels, against
``gguf.quants.dequantize`` on random blocks.

Random bytes are valid blocks of every format once their float16 scale fields hold
small finite numbers, so the blocks are made with numpy following ggml's layouts (gguf's
``quantize`` does not cover the K-quants).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import gguf
import numpy as np
import pytest
from gguf import GGMLQuantizationType as Q

from reconciler.inference.kernels.graph import GraphBuilder
from reconciler.inference.kernels.parts import col_parts
from reconciler.inference.kernels.session import make_session
from reconciler.inference.loader import load_model_info, open_source
from reconciler.inference.quant import QUANT_TYPES, dequantize, unpack
from reconciler.inference.quant.pack import NBits, concat_rows, to_nbits

# byte ranges of float16 scale fields inside one block, and their magnitude
_SCALES: dict[Q, list[tuple[int, float]]] = {
    Q.Q4_0: [(0, 0.02)],
    Q.Q4_1: [(0, 0.02), (2, -0.1)],
    Q.Q5_0: [(0, 0.02)],
    Q.Q5_1: [(0, 0.02), (2, -0.2)],
    Q.Q8_0: [(0, 0.002)],
    Q.Q4_K: [(0, 0.001), (2, 0.001)],
    Q.Q5_K: [(0, 0.0005), (2, 0.0005)],
    Q.Q6_K: [(208, 0.0002)],
}


def random_blocks(qtype: Q, n: int, k: int, seed: int = 0) -> np.ndarray:
    """``[n, k]`` weights as raw blocks of ``qtype`` with sane scales."""
    rng = np.random.default_rng(seed)
    size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(n, k // size, type_size), dtype=np.uint8)
    for at, magnitude in _SCALES[qtype]:
        values = (rng.random((n, k // size, 1)) * magnitude).astype(np.float16)
        raw[..., at : at + 2] = values.view(np.uint8)
    return raw.reshape(n, -1)


def _matmul(parts: Sequence[NBits], x: np.ndarray, int8: bool) -> np.ndarray:
    g = GraphBuilder(int8)
    n = sum(p.n for p in parts)
    g.output(g.linear(g.input("x", x.shape[1]), list(parts)), "y", n)
    session, _keep = make_session(g.model_bytes(), 1, g.external, int8=int8)
    out: np.ndarray = session.run(None, {"x": x})[0]
    return out


@pytest.mark.parametrize("qtype", QUANT_TYPES, ids=lambda q: q.name)
def test_unpacked_codes_dequantize_like_gguf(qtype: Q) -> None:
    raw = random_blocks(qtype, 5, 512)
    u = unpack(raw, qtype)
    codes = u.code_matrix()
    assert codes.shape == (5, 512) and codes.dtype == np.uint8
    assert int(codes.max()) < (16 if u.bits == 4 else 256)
    want = dequantize(raw, qtype)
    np.testing.assert_allclose(u.dequantize(), want, rtol=1e-5, atol=1e-6 * np.abs(want).max())


@pytest.mark.parametrize("rows", [1, 3])
def test_q8_0_rows_dequantize_exactly_as_gguf(rows: int) -> None:
    """The engine's own Q8_0 path (embedding rows) gives gguf's values bit for bit, for
    one row or several, and for a row picked out of a larger table (a non-contiguous
    view)."""
    table = random_blocks(Q.Q8_0, 8, 576, seed=rows)
    for raw in (table[:rows], table[[5, 1, 7][:rows]], table[::2][:rows]):
        want = gguf.quants.dequantize(np.ascontiguousarray(raw), Q.Q8_0)
        got = dequantize(raw, Q.Q8_0)
        assert got.dtype == np.float32 and got.shape == (rows, 576)
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("int8", [False, True], ids=["exact", "int8"])
@pytest.mark.parametrize("qtype", QUANT_TYPES, ids=lambda q: q.name)
def test_quantized_matmul_matches_dequantized_numpy(qtype: Q, int8: bool) -> None:
    n, k = 48, 512
    raw = random_blocks(qtype, n, k, seed=1)
    x = np.random.default_rng(2).standard_normal((3, k)).astype(np.float32)
    want = x @ dequantize(raw, qtype).T  # the numpy oracle
    got = _matmul([to_nbits(unpack(raw, qtype), int8)], x, int8)
    scale = float(np.abs(want).max())
    # exact: fp32 rounding only. int8: activations quantized per block (about 1/127).
    tolerance = 1e-5 if not int8 else 2e-2
    assert float(np.abs(got - want).max()) <= tolerance * scale


def test_fused_rows_of_mixed_formats_concatenate() -> None:
    """Q/K/V of different formats in one linear: 4-bit and 8-bit parts side by side."""
    k = 256
    x = np.random.default_rng(3).standard_normal((2, k)).astype(np.float32)
    raws = [(random_blocks(t, 16, k, seed=i), t) for i, t in enumerate((Q.Q4_K, Q.Q4_0, Q.Q6_K))]
    parts = [to_nbits(u, False) for u in concat_rows([unpack(r, t) for r, t in raws])]
    assert len(parts) == 2  # Q4_K and Q4_0 share the 4-bit form; Q6_K (16-blocks) does not
    want = np.concatenate([x @ dequantize(r, t).T for r, t in raws], axis=1)
    got = _matmul(parts, x, False)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


def test_column_share_off_block_boundaries_uses_covering_blocks(models_dir: Path) -> None:
    """O columns [16, 48) of a 32-blocked matrix: the rank keeps blocks [0, 64) and pads
    its input with zeros on both sides; the product equals the exact column slice."""
    path = models_dir / "tiny-llama.gguf"
    info = load_model_info(path)
    source = open_source(path, info.config)
    parts, before, after = col_parts(source, "0.o", 16, 48, int8=False)
    assert (before, after) == (16, 16)
    x = np.random.default_rng(4).standard_normal((3, 32)).astype(np.float32)
    g = GraphBuilder(False)
    pads = g.const(np.array([0, before, 0, after], dtype=np.int64), "pads")
    padded = g.op("Pad", [g.input("x", 32), pads])
    g.output(g.linear(padded, parts), "y", info.config.dim)
    session, _keep = make_session(g.model_bytes(), 1, g.external)
    want = x @ source.cols("0.o", 16, 48).T
    np.testing.assert_allclose(session.run(None, {"x": x})[0], want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("qtype", QUANT_TYPES, ids=lambda q: q.name)
def test_unpacking_a_few_rows_at_a_time_gives_the_same_matrix(
    qtype: Q, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.inference.quant import blocks

    raw = random_blocks(qtype, 37, 512, seed=6)
    whole = unpack(raw, qtype)
    monkeypatch.setattr(blocks, "CHUNK_BLOCKS", 7)  # one or a few rows per step
    steps = unpack(raw, qtype)
    np.testing.assert_array_equal(steps.code_matrix(), whole.code_matrix())
    np.testing.assert_array_equal(steps.scale, whole.scale)
    np.testing.assert_array_equal(steps.dequantize(), whole.dequantize())
