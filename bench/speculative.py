"""Speculative decoding by prompt lookup on the demo model, one member (or --tp ranks in
one process): rounds per token and tokens/s with and without drafts, side by side.

    .venv/bin/python bench/speculative.py                     # onnxruntime, exact, 1 thread
    .venv/bin/python bench/speculative.py --drafts 0,4,8,16 --tokens 128 --rounds 5
    .venv/bin/python bench/speculative.py --kernels numpy --activations exact
    .venv/bin/python bench/speculative.py --tp 2     # two ranks in this process

Prompts whose answer repeats text (the chat asks the model to copy a paragraph, and a
plain continuation of a repeated sentence), greedy. For each draft setting (0 = plain
decoding) the runs take turns round by round (the machine is shared: its load moves) and
the medians are printed: decode tokens/s, forward passes per generated token after the
prefill (``TokenEvent.round``: with ``--tp`` the distributed rounds), tokens per verify
pass, bytes rank 0 sends per token, and how many leading tokens are
identical to plain greedy decoding's (all of them, with either activations). Figures
only: no assertions.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from reconciler.inference import demo_model_path, full_share, load_model_info, load_shard  # noqa: E402
from reconciler.inference.kernels import THREADS_ENV  # noqa: E402
from reconciler.inference.model import Engine  # noqa: E402
from reconciler.inference.sampling import SamplingParams  # noqa: E402
from reconciler.inference.tokenizer import Tokenizer  # noqa: E402
from tests.inference_ranks import make_engines, run_ranks  # noqa: E402

PARAGRAPH = (
    "The mesh pools the laptops, desktops and small boards of one home network. Each "
    "device runs an agent that announces itself, joins the pool with a certificate, and "
    "holds a share of every weight matrix of the model. When a job arrives, the members "
    "compute their shares and exchange partial sums over mutually authenticated links."
)
PROMPTS: dict[str, str | list[dict[str, str]]] = {
    "copy (chat)": [{"role": "user", "content": f"Repeat this text exactly:\n\n{PARAGRAPH}"}],
    "repeat (raw)": "The quick brown fox jumps over the lazy dog. " * 6,
}


def prompt_ids(tokenizer: Tokenizer, prompt: str | list[dict[str, str]]) -> list[int]:
    if isinstance(prompt, str):
        return tokenizer.encode(prompt)
    return tokenizer.encode(tokenizer.apply_chat_template(prompt), add_special=False)


def load(kernels: str, activations: str, threads: int, tp: int) -> list[Engine]:
    """One engine per rank (``tp`` ranks in this process, even column ranges)."""
    path = demo_model_path()
    config = load_model_info(path).config
    if tp == 1:
        weights = load_shard(path, config, full_share(config), None, kernels, activations,
                             threads)  # fmt: skip
        return [Engine(config, weights, cache_len=512)]
    os.environ[THREADS_ENV] = str(threads)
    split = [(r * 8192 // tp, (r + 1) * 8192 // tp) for r in range(tp)]
    return make_engines(path, config, split, 8192, 512, kernels, activations)


def run(engines: list[Engine], ids: list[int], tokens: int, draft: int) -> Run:
    """One greedy generation on every rank; rank 0's figures."""
    params = SamplingParams(max_tokens=tokens, draft_tokens=draft)  # up to eos
    out = run_ranks(engines, lambda e: list(e.generate(ids, params)))[0]
    decoded = out[1:]  # the tokens after the prefill's
    seconds = sum(e.step_ms for e in decoded) / 1000.0
    sent = sum(e.bytes_sent for e in decoded) / len(decoded)
    return Run(len(decoded) / seconds, out[-1].round / len(decoded), sent,
               [e.token_id for e in out])  # fmt: skip


@dataclass
class Run:
    tok_s: float  # decode tokens per second (the passes' time)
    passes: float  # decode passes per token after the first
    bytes_sent: float  # per token after the first, by rank 0
    tokens: list[int]


def _common(a: list[int], b: list[int]) -> int:
    """Length of the common prefix of two token lists."""
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), len(a))


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--kernels", default="onnxruntime")
    ap.add_argument("--activations", default="exact")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--drafts", default="0,4,8,16", help="draft_tokens settings (0 = plain)")
    ap.add_argument("--tokens", type=int, default=96)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tp", type=int, default=1, help="ranks in this process (InProcessGroup)")
    args = ap.parse_args()
    drafts = [int(d) for d in args.drafts.split(",")]
    tokenizer = load_model_info(demo_model_path()).tokenizer
    engines = load(args.kernels, args.activations, args.threads, args.tp)
    print(f"demo model, TP={args.tp}, {args.kernels} kernels, {args.activations} activations, "
          f"{args.threads} thread(s) per rank, up to {args.tokens} tokens, median of "
          f"{args.rounds} rounds")  # fmt: skip
    print(f"{'prompt':14} {'draft':>5} {'tok/s':>7} {'speedup':>7} {'passes/tok':>10} "
          f"{'tok/pass':>8} {'bytes/tok':>9} {'same prefix':>11}")  # fmt: skip
    for name, prompt in PROMPTS.items():
        ids = prompt_ids(tokenizer, prompt)
        speed: dict[int, list[float]] = {d: [] for d in drafts}
        last: dict[int, Run] = {}
        run(engines, ids, 8, 0)  # warm up
        for _ in range(args.rounds):
            for d in drafts:
                last[d] = run(engines, ids, args.tokens, d)
                speed[d].append(last[d].tok_s)
        base = statistics.median(speed[drafts[0]])
        for d in drafts:
            tps, r = statistics.median(speed[d]), last[d]
            same = f"{_common(r.tokens, last[drafts[0]].tokens)}/{len(r.tokens)}"
            print(f"{name:14} {d:5d} {tps:7.1f} {tps / base:6.2f}x {r.passes:10.3f} "
                  f"{1 / r.passes:8.2f} {r.bytes_sent:9,.0f} {same:>11}")  # fmt: skip


if __name__ == "__main__":
    main()
