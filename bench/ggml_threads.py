"""ggml's threads alone and beside another process: why the ggml kernels default to one.

    .venv/bin/python bench/ggml_threads.py [--tokens 300] [--rounds 3]

Decodes the demo model with the ggml kernels in one process, then in two processes at
once (two agents on one machine, or any other load on the cores), with 1 and 2 threads,
and with 2 threads and ``OMP_WAIT_POLICY=passive`` (this build's threads are OpenMP's).
Every process is a fresh interpreter with one BLAS thread; figures are tokens/s per
process, medians over rounds taken in turns. Figures only: no assertions.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = [("1 thread", 1, {}), ("2 threads", 2, {}),
         ("2 threads, passive", 2, {"OMP_WAIT_POLICY": "passive"})]  # fmt: skip


def child(threads: int, tokens: int) -> None:
    """Decode ``tokens`` tokens; print tokens/s."""
    import time

    import numpy as np

    from reconciler.inference import Engine, full_share, load_model_info, load_shard
    from reconciler.inference.demo import demo_model_path

    path = demo_model_path()
    info = load_model_info(path)
    weights = load_shard(path, info.config, full_share(info.config), None, "ggml", "int8", threads)
    engine = Engine(info.config, weights, cache_len=tokens + 16)
    token = int(np.argmax(engine.prefill(info.tokenizer.encode("The capital of France is"))))
    start = time.perf_counter()
    for _ in range(tokens):
        token = int(np.argmax(engine.decode(token)))
    print(tokens / (time.perf_counter() - start))


def run(threads: int, extra: dict[str, str], tokens: int, processes: int) -> list[float]:
    env = {**os.environ, **extra, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"}
    cmd = [sys.executable, __file__, "--child", str(threads), "--tokens", str(tokens)]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(processes)]  # fmt: skip
    return [float(p.communicate()[0].strip().splitlines()[-1]) for p in procs]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--tokens", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.tokens)
        return
    alone: dict[str, list[float]] = {label: [] for label, _, _ in CASES}
    paired: dict[str, list[float]] = {label: [] for label, _, _ in CASES}
    for _ in range(args.rounds):
        for label, threads, extra in CASES:
            alone[label] += run(threads, extra, args.tokens, 1)
            paired[label] += run(threads, extra, args.tokens, 2)
    print(
        f"demo model, ggml kernels, {args.tokens} decoded tokens, medians of {args.rounds} rounds"
    )
    print(f"{'':20} {'alone tok/s':>12} {'two at once, each':>18}")
    for label, _, _ in CASES:
        print(
            f"{label:20} {statistics.median(alone[label]):12.1f} {statistics.median(paired[label]):18.1f}"
        )


if __name__ == "__main__":
    main()
