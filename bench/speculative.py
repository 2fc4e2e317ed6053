"""Speculative decoding by prompt lookup on the demo model, one member: rounds per token
and tokens/s with and without drafts, side by side.

    .venv/bin/python bench/speculative.py                     # onnxruntime, exact, 1 thread
    .venv/bin/python bench/speculative.py --drafts 0,4,8,16 --tokens 128 --rounds 5
    .venv/bin/python bench/speculative.py --kernels numpy --activations exact

Prompts whose answer repeats text (the chat asks the model to copy a paragraph, and a
plain continuation of a repeated sentence), greedy. For each draft setting (0 = plain
decoding) the runs take turns round by round (the machine is shared: its load moves) and
the medians are printed: decode tokens/s, forward passes per generated token after the
prefill (``TokenEvent.round``), tokens per verify pass, and how many leading tokens are
identical to plain greedy decoding's (all of them with exact activations; with int8
ones a pass of many positions rounds differently from one-position passes, as a prefill
does, so an answer may part from the plain one at a near tie). Figures only: no
assertions.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from reconciler.inference import demo_model_path, full_share, load_model_info, load_shard  # noqa: E402
from reconciler.inference.model import Engine  # noqa: E402
from reconciler.inference.sampling import SamplingParams  # noqa: E402
from reconciler.inference.tokenizer import Tokenizer  # noqa: E402

PARAGRAPH = (
    "The mesh pools the laptops, desktops and small boards of one home network. Each "
    "device runs an agent that announces itself, joins the pool with a certificate, and "
    "holds a share of every weight matrix of the model. When a job arrives, the members "
    "compute their shares and exchange partial sums over mutually authenticated links."
)
PROMPTS = {
    "copy (chat)": [{"role": "user", "content": f"Repeat this text exactly:\n\n{PARAGRAPH}"}],
    "repeat (raw)": "The quick brown fox jumps over the lazy dog. " * 6,
}


def prompt_ids(tokenizer: Tokenizer, prompt: str | list[dict[str, str]]) -> list[int]:
    if isinstance(prompt, str):
        return tokenizer.encode(prompt)
    return tokenizer.encode(tokenizer.apply_chat_template(prompt), add_special=False)


def run(engine: Engine, ids: list[int], tokens: int, draft: int) -> tuple[float, float, list[int]]:
    """(decode tok/s, decode passes per generated token, token ids) of one generation."""
    params = SamplingParams(max_tokens=tokens, draft_tokens=draft)  # up to eos
    first = 0.0
    out = []
    for event in engine.generate(ids, params):
        if not out:
            first = time.perf_counter()
        out.append(event)
    end = time.perf_counter()
    decoded = len(out) - 1  # tokens after the prefill's
    return decoded / (end - first), out[-1].round / decoded, [e.token_id for e in out]


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
    args = ap.parse_args()
    drafts = [int(d) for d in args.drafts.split(",")]
    path = demo_model_path()
    info = load_model_info(path)
    weights = load_shard(path, info.config, full_share(info.config), None, args.kernels,
                         args.activations, args.threads)  # fmt: skip
    engine = Engine(info.config, weights, cache_len=512)
    print(f"demo model, one member, {args.kernels} kernels, {args.activations} activations, "
          f"{args.threads} thread(s), {args.tokens} tokens, median of {args.rounds} rounds")  # fmt: skip
    print(f"{'prompt':14} {'draft':>5} {'tok/s':>7} {'speedup':>7} {'passes/tok':>10} "
          f"{'tok/pass':>8} {'same prefix':>11}")  # fmt: skip
    for name, prompt in PROMPTS.items():
        ids = prompt_ids(info.tokenizer, prompt)
        speed: dict[int, list[float]] = {d: [] for d in drafts}
        passes: dict[int, float] = {}
        tokens: dict[int, list[int]] = {}
        run(engine, ids, 8, 0)  # warm up
        for _ in range(args.rounds):
            for d in drafts:
                tps, per_token, got = run(engine, ids, args.tokens, d)
                speed[d].append(tps)
                passes[d], tokens[d] = per_token, got
        base = statistics.median(speed[drafts[0]])
        for d in drafts:
            tps = statistics.median(speed[d])
            same = f"{_common(tokens[d], tokens[drafts[0]])}/{len(tokens[d])}"
            print(f"{name:14} {d:5d} {tps:7.1f} {tps / base:6.2f}x {passes[d]:10.3f} "
                  f"{1 / passes[d]:8.2f} {same:>11}")  # fmt: skip


if __name__ == "__main__":
    main()
