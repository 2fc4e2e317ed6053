"""ggml's matmul on GGUF blocks where they lie, beside onnxruntime's on its own layout.

ggml (the C library under llama.cpp) through ``ctypes``, on the library the engine's
ggml kernels use (the ``xllamacpp`` wheel's; ``--lib`` for another, such as the
``libggml-base``/``libggml-cpu`` that a ``llama-cpp-python`` build ships). The weight
tensor's memory is the raw Q4_0 blocks as the file stores them
(``ggml_backend_cpu_buffer_from_ptr``: no copy, 0.5625 bytes a weight), through the
engine's own ``BlockMatrix`` (each call copies the input in and the output out).
Beside it, in the same run: onnxruntime ``MatMulNBits`` on the same blocks repacked by
``quant.pack`` (exact and int8 activations; 0.625 and 0.75 bytes a weight held).

    .venv/bin/python bench/ggml_gemv.py [--lib /work/refvenv/lib/python3.11/site-packages/llama_cpp/lib]

Prints the median time of a GEMV (and a 64-row GEMM) per kernel, Gweights/s, the
bytes per weight each holds, and the largest difference from the dequantized numpy
product. ggml quantizes the activation to Q8_0 blocks for its Q4_0 dot product, as
onnxruntime's int8 mode does. Figures only: no assertions.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGMLQuantizationType as Q

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reconciler.inference.kernels.blockmatrix import BlockMatrix  # noqa: E402
from reconciler.inference.kernels.ggml import Ggml, library_path, open_library  # noqa: E402
from reconciler.inference.kernels.graph import GraphBuilder  # noqa: E402
from reconciler.inference.kernels.session import make_session  # noqa: E402
from reconciler.inference.quant.blocks import dequantize, unpack  # noqa: E402
from reconciler.inference.quant.pack import to_nbits  # noqa: E402

Q4_0_BLOCK, Q4_0_BYTES = 32, 18


def ggml_matmul(ggml: Ggml, raw: np.ndarray, x: np.ndarray, threads: int) -> Callable[[], Any]:
    """The engine's ggml product (``BlockMatrix``: input copied in, output copied out)."""
    matrix = BlockMatrix([(raw, Q.Q4_0)], threads, ggml=ggml)
    return lambda: matrix.apply(x)


def random_q4_0(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """[N, K/32*18] random Q4_0 blocks with small finite fp16 scales."""
    blocks = n * k // Q4_0_BLOCK
    data = np.frombuffer(rng.bytes(blocks * Q4_0_BYTES), np.uint8).reshape(blocks, -1).copy()
    data[:, :2] = rng.uniform(2e-4, 1.5e-2, blocks).astype("<f2").view(np.uint8).reshape(-1, 2)
    return data.reshape(n, -1)


def ort_matmul(raw: np.ndarray, k: int, int8: bool, threads: int) -> tuple[Any, int]:
    """An onnxruntime session of one MatMulNBits on the blocks, and the bytes it holds."""
    part = to_nbits(unpack(raw, Q.Q4_0), int8)
    g = GraphBuilder(int8)
    g.output(g.linear(g.input("x", k), [part]), "y", part.n)
    session, keep = make_session(g.model_bytes(), threads, g.external, int8, int8=int8)
    return (session, keep), part.nbytes


def _runner(session: Any, x: np.ndarray) -> Callable[[], Any]:
    return lambda: session.run(None, {"x": x})


def median_s(fn: Callable[[], Any], budget_s: float) -> float:
    fn()  # warm-up
    times: list[float] = []
    end = time.perf_counter() + budget_s
    while time.perf_counter() < end or len(times) < 5:
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    args = parse_args()
    lib = args.lib or library_path()
    if lib is None:
        sys.exit("no ggml library: pip install xllamacpp, or pass --lib")
    ggml = open_library(Path(lib))
    if isinstance(ggml, str):
        sys.exit(ggml)
    print(f"ggml from {ggml.path}")
    rng = np.random.default_rng(0)
    n, k = args.rows, args.cols
    raw = random_q4_0(rng, n, k)
    dense = dequantize(raw, Q.Q4_0)  # [N, K] float32: the oracle
    file_bpw = Q4_0_BYTES / Q4_0_BLOCK
    print(f"W {n} x {k} Q4_0 ({raw.nbytes / 2**20:.1f} MiB in the file), {args.threads} threads, "
          f"median over {args.budget:.1f} s per cell, rounds taken in turns")  # fmt: skip
    sessions = {m: ort_matmul(raw, k, m == "int8", args.threads) for m in ("exact", "int8")}
    rows: dict[tuple[str, int], list[float]] = {}
    errors: dict[tuple[str, int], float] = {}
    for t in (1, args.gemm_rows):
        x = rng.standard_normal((t, k)).astype(np.float32)
        want = x @ dense.T
        product = ggml_matmul(ggml, raw, x, args.threads)
        cells: dict[str, Callable[[], Any]] = {"ggml (in place)": product}
        for mode, ((session, _keep), _held) in sessions.items():
            cells[f"onnxruntime {mode}"] = _runner(session, x)
        for _ in range(args.rounds):
            for name, fn in cells.items():
                rows.setdefault((name, t), []).append(median_s(fn, args.budget))
        y = product()
        errors["ggml (in place)", t] = float(np.abs(y - want).max() / np.abs(want).max())
        for mode, ((session, _keep), _held) in sessions.items():
            got = session.run(None, {"x": x})[0]
            errors[f"onnxruntime {mode}", t] = float(np.abs(got - want).max() / np.abs(want).max())
    held = {"ggml (in place)": file_bpw}
    held |= {f"onnxruntime {m}": h / (n * k) for m, ((_s, _k), h) in sessions.items()}
    print(f"\n{'kernel':20} {'B/weight held':>13} {'GEMV us':>8} {'Gw/s':>6} "
          f"{f'GEMM{args.gemm_rows} ms':>9} {'Gw/s':>6} {'max rel err':>11}")  # fmt: skip
    for name in held:
        gemv = statistics.median(rows[name, 1])
        gemm = statistics.median(rows[name, args.gemm_rows])
        err = max(errors[name, 1], errors[name, args.gemm_rows])
        print(f"{name:20} {held[name]:13.4f} {gemv * 1e6:8.0f} {n * k / gemv / 1e9:6.1f} "
              f"{gemm * 1e3:9.2f} {args.gemm_rows * n * k / gemm / 1e9:6.1f} {err:11.1e}")  # fmt: skip
    print("B/weight held: ggml reads the file's blocks (0.5625); onnxruntime holds its own")
    print("layout (exact: nibbles + float32 scales; int8: + float32 block sums).")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--lib",
        help="a directory of libggml-base.so and libggml-cpu.so, or one library exporting "
        "ggml (default: the engine's, from the xllamacpp wheel)",
    )
    p.add_argument("--rows", type=int, default=8192, help="N, output columns")
    p.add_argument("--cols", type=int, default=2048, help="K, input columns")
    p.add_argument("--gemm-rows", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--budget", type=float, default=0.5, help="seconds per cell and round")
    return p.parse_args()


if __name__ == "__main__":
    main()
