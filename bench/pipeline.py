"""Pipeline stages on the demo model: memory per stage, and decode speed against one rank.

    .venv/bin/python bench/pipeline.py                   # stages 15/15, 5 rounds
    .venv/bin/python bench/pipeline.py --counts 10,20 --kernels numpy --rounds 3

1. Memory: each stage (and the whole model, for reference) is loaded in a process of
   its own; printed are the weight bytes it holds (``nbytes()``: packed matrices and
   norms; the onnxruntime backend's embedding stays in the file's memory map) and the
   process's resident set after loading, minus that of a process that only imported
   the engine and its kernel library.
2. Speed: in one process, the single-rank engine and the stages (threads over an
   ``InProcessGroup``: no network, so this is the pass's own overhead) take turns round
   by round; printed are median decode tokens/s, prefill tokens/s and the bytes a stage
   broadcasts per decoded token. Greedy decoding, exact activations, one kernel thread
   per rank. Figures only: no assertions.
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
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MESHNET_THREADS"):
    os.environ.setdefault(var, "1")

PROMPT = "The mesh of devices on the local network serves a language model together. " * 4
DECODE_TOKENS = 32


def load_in_child(stage: str, counts: list[int], kernels: str) -> dict[str, Any]:
    """Load one stage ("all" for the whole model, "none" for nothing) in a fresh process."""
    code = f"""
import json, psutil
from reconciler.inference import demo_model_path, load_config, load_shard
from reconciler.inference.sharding import full_share, plan_stages
path = demo_model_path(); config = load_config(path)
if {kernels!r} == "onnxruntime":
    import onnx, onnxruntime  # the libraries' own memory is not the stage's
base = psutil.Process().memory_info().rss
stage = {stage!r}
held = 0
if stage != "none":
    share = full_share(config) if stage == "all" else plan_stages(config, {counts!r})[int(stage)]
    weights = load_shard(path, config, share, kernels={kernels!r}, activations="exact")
    held = weights.nbytes()
print(json.dumps({{"held": held, "rss": psutil.Process().memory_info().rss, "base": base}}))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    figures: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


def memory(counts: list[int], kernels: str) -> None:
    baseline = load_in_child("none", counts, kernels)["rss"]
    whole = load_in_child("all", counts, kernels)
    print(f"memory ({kernels} kernels; RSS after load minus that of a process that only "
          "imported the engine and its kernel library)")  # fmt: skip
    print(f"  whole model      held {whole['held'] / 2**20:7.1f} MiB   "
          f"RSS +{(whole['rss'] - baseline) / 2**20:7.1f} MiB")  # fmt: skip
    start = 0
    for r, n in enumerate(counts):
        f = load_in_child(str(r), counts, kernels)
        layers = f"layers {start}-{start + n - 1}"
        print(f"  stage {r} {layers:<10} held {f['held'] / 2**20:7.1f} MiB   "
              f"RSS +{(f['rss'] - baseline) / 2**20:7.1f} MiB")  # fmt: skip
        start += n


def speed(counts: list[int], kernels: str, rounds: int) -> None:
    from reconciler.inference import Engine, SamplingParams, demo_model_path, load_model_info
    from reconciler.inference.loader import load_shard
    from reconciler.inference.sharding import full_share
    from tests.inference_ranks import make_stage_engines, run_ranks

    path = demo_model_path()
    info = load_model_info(path)
    ids = info.tokenizer.encode(PROMPT)
    weights = load_shard(path, info.config, full_share(info.config), None, kernels, "exact")
    single = Engine(info.config, weights, cache_len=256)
    stages = make_stage_engines(path, info.config, counts, 256, kernels, "exact")
    params = SamplingParams(max_tokens=DECODE_TOKENS, ignore_eos=True)
    figures: dict[str, list[tuple[float, float]]] = {"single": [], "stages": []}
    sent: list[int] = []
    same = True
    for _ in range(rounds):
        want = _timed(lambda: [list(single.generate(ids, params))])
        figures["single"].append(want[1])
        got = _timed(lambda: run_ranks(stages, lambda e: list(e.generate(ids, params))))
        figures["stages"].append(got[1])
        same &= all(_ids(events) == _ids(want[0][0]) for events in got[0])
        sent = [int(statistics.median(ev.bytes_sent for ev in events[1:])) for events in got[0]]
    print(f"speed ({kernels} kernels, {len(ids)} prompt tokens, {DECODE_TOKENS} decoded, "
          f"median of {rounds} rounds, one thread per rank)")  # fmt: skip
    for name, runs in figures.items():
        label = "single rank" if name == "single" else f"{len(counts)} stages in-process"
        print(f"  {label:<22} decode {statistics.median(d for _, d in runs):6.1f} tok/s   "
              f"prefill {statistics.median(p for p, _ in runs):7.1f} tok/s")  # fmt: skip
    print(f"  bytes broadcast per decoded token, by stage: {sent}")
    print(f"  greedy tokens identical to the single rank: {same}")


def _ids(events: list[Any]) -> list[int]:
    return [ev.token_id for ev in events]


def _timed(run: Any) -> tuple[Any, tuple[float, float]]:
    """(events by rank, (prefill tok/s, decode tok/s)) of one generation."""
    start = time.perf_counter()
    events = run()
    wall = time.perf_counter() - start
    first = events[0]
    prefill_s = first[0].prefill_ms / 1000.0
    decode_s = wall - prefill_s
    return events, (first[0].prompt_tokens / prefill_s, (len(first) - 1) / decode_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="15,15", help="layers per stage (default 15,15)")
    parser.add_argument("--kernels", default="onnxruntime", choices=["numpy", "onnxruntime"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    if not args.skip_memory:
        memory(counts, args.kernels)
    speed(counts, args.kernels, args.rounds)


if __name__ == "__main__":
    main()
