"""The kernel self-test: how many bytes of quantized weights this device multiplies by
per second when it decodes, on the engine's own kernels and thread cap.

4-bit matrices shaped like the projections of a 1-3B model's decoder layer (``ROWS`` x
``COLS``, blocks of 32) multiply one token's activation vector, as a decode step does:
through onnxruntime's ``MatMulNBits`` (the same graph builder, session options and
activations as ``kernels.fused``) when the engine uses onnxruntime, through ggml on the
same weights as Q4_0 blocks (``kernels.blockmatrix``) when it uses ggml, else through
numpy on the dequantized matrix (the numpy kernel). ``COPIES`` matrices (about 42 MB) are
read per product, more than a CPU's last-level cache, so the figure is what decoding
a real model gets from memory, not from cache. The figure is the matrices' GGUF Q4_0
size (18 bytes per 32 weights) over the median time of one product: the unit of
``ModelCost.layer_bytes``. About ``BUDGET_S`` of runs after a warm-up; run it off the
event loop (it blocks).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from reconciler.inference.kernels import default_activations, default_kernels, resolve
from reconciler.inference.kernels.ggml import default_threads as ggml_threads
from reconciler.inference.kernels.session import default_threads

ROWS, COLS, BLOCK = 4096, 3072, 32
COPIES = 6  # onnxruntime: 6 x 7 MB of Q4_0; numpy: one float32 matrix (50 MB) instead
Q4_0_BLOCK_BYTES = 18  # f16 scale + 16 bytes of 4-bit codes per 32 weights
BUDGET_S = 0.2
MIN_RUNS, MAX_RUNS = 5, 2000


@dataclass(frozen=True)
class SelfTest:
    """The outcome: weight bytes per second and how it was measured."""

    weight_bytes_per_s: float
    kernels: str
    activations: str
    threads: int
    runs: int


def weight_bytes(copies: int) -> int:
    """GGUF Q4_0 bytes of ``copies`` test matrices."""
    return copies * ROWS * COLS // BLOCK * Q4_0_BLOCK_BYTES


def run_selftest(
    kernels: str | None = None, activations: str | None = None, threads: int | None = None
) -> SelfTest:
    """Measure this device (blocks for a few hundred ms)."""
    chosen = resolve(kernels or default_kernels())
    acts = activations or default_activations()
    n = threads or default_threads()
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 16, (ROWS, COLS), dtype=np.uint8)
    scale = (rng.random((ROWS, COLS // BLOCK), dtype=np.float32) * np.float32(0.01)).astype(
        np.float32
    )
    x = rng.standard_normal((1, COLS)).astype(np.float32)
    if chosen == "onnxruntime":
        copies, product = COPIES, _ort_product(codes, scale, acts == "int8", n)
    elif chosen == "ggml":
        n = threads or ggml_threads()
        copies, product = COPIES, _ggml_product(codes, scale, n)
    else:
        copies, product = 1, _numpy_product(codes, scale)
    times = _time_runs(lambda: product(x))
    rate = weight_bytes(copies) / statistics.median(times)
    return SelfTest(rate, chosen, acts, n, len(times))


def _ort_product(codes: Any, scale: Any, int8: bool, threads: int) -> Callable[[Any], Any]:
    from reconciler.inference.kernels.graph import GraphBuilder
    from reconciler.inference.kernels.session import make_session
    from reconciler.inference.quant.blocks import Unpacked
    from reconciler.inference.quant.pack import to_nbits

    g = GraphBuilder(int8)
    a = g.input("x", COLS)
    part = to_nbits(Unpacked(codes, 4, BLOCK, scale, None), int8)
    copies = [part] + [_copy(part) for _ in range(COPIES - 1)]  # distinct memory each
    g.output(g.linear(a, copies), "y", ROWS * COPIES)
    session, keep = make_session(g.model_bytes(), threads, g.external, int8, int8=int8)

    def product(x: Any) -> Any:
        _ = keep
        return session.run(None, {"x": x})[0]

    return product


def _ggml_product(codes: Any, scale: Any, threads: int) -> Callable[[Any], Any]:
    """The same weights as Q4_0 blocks (a float16 scale, then byte j holding codes j and
    j + 16 in its low and high nibble), ``COPIES`` distinct parts of one matrix."""
    from gguf import GGMLQuantizationType as Q

    from reconciler.inference.kernels.blockmatrix import BlockMatrix

    q = codes.reshape(ROWS, COLS // BLOCK, BLOCK)
    blocks = np.empty((ROWS, COLS // BLOCK, Q4_0_BLOCK_BYTES), np.uint8)
    blocks[..., :2] = scale.astype("<f2").view(np.uint8).reshape(ROWS, COLS // BLOCK, 2)
    blocks[..., 2:] = q[..., :16] | (q[..., 16:] << 4)
    raw = blocks.reshape(ROWS, -1)
    matrix = BlockMatrix([(raw.copy(), Q.Q4_0) for _ in range(COPIES)], threads)
    return matrix.apply


def _copy(part: Any) -> Any:
    from dataclasses import replace

    return replace(part, packed=part.packed.copy(), scales=part.scales.copy())


def _numpy_product(codes: Any, scale: Any) -> Callable[[Any], Any]:
    blocks = codes.reshape(ROWS, COLS // BLOCK, BLOCK).astype(np.float32) - np.float32(8.0)
    dense = np.ascontiguousarray((blocks * scale[..., None]).reshape(ROWS, COLS).T)
    return lambda x: x @ dense


def _time_runs(run: Callable[[], Any]) -> list[float]:
    run()
    run()  # warm-up: first runs allocate and prepack
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < MAX_RUNS and (
        len(times) < MIN_RUNS or time.perf_counter() - start < BUDGET_S
    ):
        t0 = time.perf_counter()
        run()
        times.append(max(time.perf_counter() - t0, 1e-9))
    return times
