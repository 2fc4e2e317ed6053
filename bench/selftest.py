"""The kernel self-test against the engine's real decode, side by side.

    .venv/bin/python bench/selftest.py                 # 2 threads, 3 rounds
    .venv/bin/python bench/selftest.py --threads 1 --rounds 5

For each kernel choice (numpy; onnxruntime with exact and int8 activations), in a
process of its own (thread pools are per process), rounds taking turns: the agent's
self-test (``reconciler.inference.selftest``: weight bytes per second), then 64 decode
steps of the demo model, whose weight bytes per second are the GGUF file's tensor bytes
times the decode tokens/s. Printed: medians, the self-test's figure over the decode's,
the time per layer a decode step takes beyond its weight bytes at the self-test's speed
(attention, norms, kernel calls and Python: the planner's ``LAYER_OVERHEAD_S``), and the
planner's prediction for one member with that constant. Figures only: no assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reconciler.placement.costs import LAYER_OVERHEAD_S  # noqa: E402

CHOICES = [("numpy", "exact"), ("onnxruntime", "exact"), ("onnxruntime", "int8")]
LAYERS = 30  # the demo model's decoder layers


def model_bytes(path: Path) -> int:
    """Bytes of every tensor of a GGUF file (what a decode step reads, roughly)."""
    import gguf

    return sum(int(t.n_bytes) for t in gguf.GGUFReader(path).tensors)


def serve(kernels: str, activations: str, threads: int) -> None:
    """Child: load the demo model, then answer rounds on stdin with [selftest, decode]."""
    from reconciler.inference import Engine, full_share, load_model_info, load_shard
    from reconciler.inference.demo import demo_model_path
    from reconciler.inference.selftest import run_selftest

    path = demo_model_path()
    info = load_model_info(path)
    weights = load_shard(
        path, info.config, full_share(info.config), None, kernels, activations, threads
    )
    engine = Engine(info.config, weights, cache_len=256)
    size = model_bytes(path)
    print("ready", flush=True)
    for line in sys.stdin:
        decode = int(json.loads(line)["decode"])
        test = run_selftest(kernels, activations, threads).weight_bytes_per_s
        engine.reset()
        logits = engine.prefill([1, 2, 3, 4])
        start = time.perf_counter()
        for _ in range(decode):
            logits = engine.decode(int(np.argmax(logits)))
        rate = decode / (time.perf_counter() - start)
        print(json.dumps([test, size * rate, rate]), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--decode-tokens", type=int, default=64)
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        kernels, activations = args.serve.split(":")
        serve(kernels, activations, args.threads)
        return
    env = {**os.environ, "OPENBLAS_NUM_THREADS": str(args.threads),
           "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(ROOT)}  # fmt: skip
    children = {}
    for kernels, activations in CHOICES:
        cmd = [sys.executable, __file__, "--serve", f"{kernels}:{activations}",
               "--threads", str(args.threads)]  # fmt: skip
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                env=env)  # fmt: skip
        assert proc.stdout is not None and proc.stdout.readline().startswith("ready")
        children[f"{kernels} {activations}"] = proc
    results: dict[str, list[list[float]]] = {name: [] for name in children}
    for _ in range(args.rounds):
        for name, proc in children.items():
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(json.dumps({"decode": args.decode_tokens}) + "\n")
            proc.stdin.flush()
            results[name].append(json.loads(proc.stdout.readline()))
    for proc in children.values():
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=60)
    print(f"demo model, {args.threads} threads, medians of {args.rounds} interleaved rounds;"
          f" per layer: what a decode step takes beyond bytes / self-test, over the"
          f" {LAYERS} layers (the planner's LAYER_OVERHEAD_S is {LAYER_OVERHEAD_S * 1e3:.2f} ms,"
          f" predicted: bytes / self-test + layers x LAYER_OVERHEAD_S)")  # fmt: skip
    for name, rounds in results.items():
        test, decode, tok_s = (statistics.median(r[i] for r in rounds) for i in range(3))
        size = decode / tok_s  # the file's bytes
        per_layer = (1.0 / tok_s - size / test) / LAYERS
        predicted = 1.0 / (size / test + LAYERS * LAYER_OVERHEAD_S)
        print(f"{name:20} self-test {test / 1e9:6.2f} GB/s   decode {decode / 1e9:6.2f} GB/s "
              f"({tok_s:6.1f} tok/s)   self-test / decode {test / decode:5.2f}   "
              f"per layer {per_layer * 1e3:5.2f} ms   predicted {predicted:6.1f} tok/s")  # fmt: skip


if __name__ == "__main__":
    main()
