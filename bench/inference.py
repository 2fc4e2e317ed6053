"""Benchmark the numpy engine on the demo model (SmolLM2-135M-Instruct Q4_1, fp32 in memory).

    .venv/bin/python bench/inference.py             # numpy engine only
    /work/refvenv/bin/python bench/inference.py     # + transformers fp32 (needs torch)

Prints prefill and decode tokens/s at TP=1 and TP=2 (InProcessGroup threads), peak RSS,
the measured memory bandwidth (large numpy copy: bytes read + written per second) and
the decode bound = bandwidth / bytes of fp32 weights read per token. Figures only: no
assertions.
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reconciler.inference.demo import demo_model_path
from reconciler.inference.loader import load_model_info, load_shard
from reconciler.inference.local import make_engines, run_ranks
from reconciler.inference.model import Engine
from reconciler.inference.sharding import full_share

PROMPT_TOKENS = 64
DECODE_TOKENS = 48
ROUNDS = 5  # the machine is shared: report the best round and the median


def bandwidth_gbs(nbytes: int = 512 << 20, repeats: int = 5) -> float:
    """Best of ``repeats`` large copies, counting bytes read plus bytes written."""
    src = np.ones(nbytes // 4, dtype=np.float32)
    dst = np.ones_like(src)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - start)
    return 2 * nbytes / best / 1e9


def run_engine(engine: Engine, prompt: list[int]) -> list[tuple[float, float]]:
    """(prefill tokens/s, decode tokens/s) per round, greedy, after a warm-up."""
    engine.prefill(prompt[:8])
    return [_round(engine, prompt) for _ in range(ROUNDS)]


def _round(engine: Engine, prompt: list[int]) -> tuple[float, float]:
    engine.reset()
    start = time.perf_counter()
    logits = engine.prefill(prompt)
    prefill = len(prompt) / (time.perf_counter() - start)
    start = time.perf_counter()
    for _ in range(DECODE_TOKENS):
        logits = engine.decode(int(np.argmax(logits)))
    return prefill, DECODE_TOKENS / (time.perf_counter() - start)


def report(label: str, rounds: list[tuple[float, float]]) -> float:
    """Print best and median of the rounds; return the best decode tokens/s."""
    prefill, decode = (sorted(r[i] for r in rounds) for i in (0, 1))
    mid = len(rounds) // 2
    print(
        f"{label:20} prefill best {prefill[-1]:6.1f} median {prefill[mid]:6.1f} tok/s | "
        f"decode best {decode[-1]:5.1f} median {decode[mid]:5.1f} tok/s"
    )
    return decode[-1]


def transformers_decode(path: Path, prompt: list[int]) -> list[tuple[float, float]] | None:
    """Same measurement with transformers fp32, or None when torch is not importable."""
    try:
        import torch
        from transformers import AutoModelForCausalLM
    except ImportError:
        return None
    torch.set_num_threads(2)
    model: Any = AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=torch.float32
    ).eval()
    with torch.no_grad():
        model(torch.tensor([prompt[:8]]))
        return [_torch_round(model, prompt) for _ in range(ROUNDS)]


def _torch_round(model: Any, prompt: list[int]) -> tuple[float, float]:
    import torch

    ids = torch.tensor([prompt])
    with torch.no_grad():
        start = time.perf_counter()
        out = model(ids, use_cache=True)
        prefill = len(prompt) / (time.perf_counter() - start)
        past, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
        start = time.perf_counter()
        for _ in range(DECODE_TOKENS):
            out = model(nxt, past_key_values=past, use_cache=True)
            past, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
        return prefill, DECODE_TOKENS / (time.perf_counter() - start)


def main() -> None:
    path = demo_model_path()
    info = load_model_info(path)
    text = "The mesh of devices on the local network serves a language model together. " * 8
    prompt = info.tokenizer.encode(text)[:PROMPT_TOKENS]
    weights = load_shard(path, info.config, full_share(info.config))
    per_token = weights.nbytes()  # every matrix is streamed once per decoded token
    bw = bandwidth_gbs()
    bound = bw * 1e9 / per_token
    print(f"model            {path.name}: {per_token / 1e6:.0f} MB fp32 weights read per token")
    print(
        f"bandwidth        {bw:.1f} GB/s (numpy copy, read+write); decode bound {bound:.1f} tok/s"
    )
    rounds = run_engine(Engine(info.config, weights, cache_len=256), prompt)
    decode = report("numpy TP=1", rounds)
    print(f"                 best decode is {100 * decode / bound:.0f}% of the bandwidth bound")
    del weights
    engines = make_engines(path, info.config, [(0, 4096), (4096, 8192)], 8192, cache_len=256)
    report("numpy TP=2 (threads)", run_ranks(engines, lambda e: run_engine(e, prompt))[0])
    del engines
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS         {rss_mb:.0f} MB")
    ref = transformers_decode(path, prompt)
    if ref is None:
        print("transformers     not importable (run with an environment that has torch)")
    else:
        best = report("transformers fp32", ref)
        print(f"                 numpy TP=1 best decode is {decode / best:.1f}x transformers")


if __name__ == "__main__":
    main()
