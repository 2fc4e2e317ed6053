"""Quantized matmul speed per GGUF format and kernel: Gweights/s, numpy fp32 BLAS beside it.

    .venv/bin/python bench/kernels.py                    # 4096 x 4096, 2 threads
    .venv/bin/python bench/kernels.py --n 1536 --k 576 --threads 1

For every format a random matrix of raw GGUF blocks is packed as the engine packs it
(``quant.unpack`` + ``quant.pack.to_nbits``) and multiplied by one activation row (GEMV,
decode) and by 64 rows (GEMM, prefill) in an onnxruntime session of one ``linear``: exact
(fp32 activations; 8-bit codes split into two nibbles) and int8 activations
(``accuracy_level=4``). numpy multiplies the dequantized float32 matrix with its BLAS.
The kernels take turns, and each figure is the median of ``--repeats`` timed batches.
Figures only: no assertions.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gguf import GGMLQuantizationType as Q

from reconciler.inference.kernels.graph import GraphBuilder
from reconciler.inference.kernels.session import make_session
from reconciler.inference.quant import QUANT_TYPES, dequantize, unpack
from reconciler.inference.quant.pack import to_nbits
from tests.unit.inference.test_inference_quant import random_blocks


def timed(fn: Callable[[], object], seconds: float = 0.2) -> float:
    """Seconds per call over a batch of about ``seconds``."""
    fn()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        n += 1
    return (time.perf_counter() - start) / n


def numpy_matmul(w: np.ndarray) -> Callable[[np.ndarray], object]:
    return lambda x: x @ w.T


def session_for(
    raw: np.ndarray, qtype: Q, int8: bool, threads: int
) -> Callable[[np.ndarray], object]:
    part = to_nbits(unpack(raw, qtype), int8)
    g = GraphBuilder(int8)
    g.output(g.linear(g.input("x", part.k), [part]), "y", part.n)
    session, keep = make_session(g.model_bytes(), threads, g.external)
    return lambda x: (session.run(None, {"x": x}), keep)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--k", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(args.threads))
    rng = np.random.default_rng(0)
    rows = {t: rng.standard_normal((t, args.k)).astype(np.float32) for t in (1, 64)}
    weights = args.n * args.k
    print(f"{args.n} x {args.k}, {args.threads} threads, Gweights/s (medians of {args.repeats})")
    print(f"{'format':8} {'numpy fp32':>11} {'ort exact':>10} {'ort int8':>9} | prefill x64: "
          f"{'numpy':>7} {'exact':>7} {'int8':>7}")  # fmt: skip
    for qtype in QUANT_TYPES:
        raw = random_blocks(qtype, args.n, args.k)
        w = dequantize(raw, qtype)
        kernels: dict[str, Callable[[np.ndarray], object]] = {
            "numpy": numpy_matmul(w),
            "exact": session_for(raw, qtype, False, args.threads),
            "int8": session_for(raw, qtype, True, args.threads),
        }
        figures: dict[tuple[str, int], list[float]] = {(k, t): [] for k in kernels for t in rows}
        for _ in range(args.repeats):
            for (name, t), out in figures.items():
                x = rows[t]
                out.append(weights * t / timed(partial(kernels[name], x)) / 1e9)
        med = {key: statistics.median(v) for key, v in figures.items()}
        print(f"{qtype.name:8} {med['numpy', 1]:11.1f} {med['exact', 1]:10.1f} {med['int8', 1]:9.1f} | "
              f"{'':13} {med['numpy', 64]:7.1f} {med['exact', 64]:7.1f} {med['int8', 64]:7.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
