"""Bytes on the wire and token agreement of the Q80 all-reduce against float32, on the
demo model at TP = 2 (two ranks in this process, InProcessGroup).

    .venv/bin/python bench/wire.py                      # onnxruntime kernels, exact activations
    .venv/bin/python bench/wire.py --kernels numpy --tokens 16
    .venv/bin/python bench/wire.py --activations int8

For each wire format (``f32``, ``q80``) both ranks generate greedily from a fixed prompt
set (8 prompts x 32 tokens). Printed:

- bytes per generated token that one rank sends (payloads as ``Metered`` counts them,
  from ``TokenEvent.bytes_sent`` over the decode steps; the network adds a 32 to 40 byte
  frame header per collective, 62 collectives per token for this model);
- top-1 agreement with f32, teacher-forced: the q80 ranks read the f32 run's tokens in
  one pass and their argmax is compared position by position (the same pass over f32
  ranks is the control: one pass of many rows against step-by-step decoding);
- free-running agreement: prompts whose 32 greedy tokens are identical, and the mean
  length of the common prefix.

Figures only: no assertions.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "MESHNET_THREADS"):
    os.environ.setdefault(_var, "1")  # two ranks share this machine: one thread each

import numpy as np  # noqa: E402

from reconciler.inference import demo_model_path, load_model_info  # noqa: E402
from reconciler.inference.model import Engine  # noqa: E402
from reconciler.inference.q80reduce import with_wire  # noqa: E402
from reconciler.inference.sampling import SamplingParams  # noqa: E402
from tests.inference_ranks import make_engines, run_ranks  # noqa: E402

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):",
    "Once upon a time, in a small village,",
    "The three laws of thermodynamics state that",
    "To make a cup of tea, first",
    "In 1969, the first humans to walk on the Moon",
    "Photosynthesis is the process by which",
    "The best way to learn a new language is",
]
SPLIT = [(0, 4096), (4096, 8192)]  # TP = 2, 50/50


def ranks(kernels: str, activations: str, wire: str) -> list[Engine]:
    path = demo_model_path()
    config = load_model_info(path).config
    engines = make_engines(path, config, SPLIT, 8192, 256, kernels, activations)
    for e in engines:
        e.comm = with_wire(e.comm, wire)
    return engines


def generate(engines: list[Engine], ids: list[int], tokens: int) -> tuple[list[int], float, float]:
    """(tokens, bytes one rank sent per decoded token, decode tok/s) of a greedy run."""
    params = SamplingParams(max_tokens=tokens, ignore_eos=True)
    runs = run_ranks(engines, lambda e: list(e.generate(ids, params)))
    events = runs[0]
    assert all([e.token_id for e in r] == [e.token_id for e in events] for r in runs)
    decoded = events[1:]
    per_token = sum(e.bytes_sent for e in decoded) / len(decoded)
    decode_s = sum(e.step_ms for e in decoded) / 1000.0
    return [e.token_id for e in events], per_token, len(decoded) / decode_s


def forced(engines: list[Engine], ids: list[int], seq: list[int]) -> np.ndarray:
    """Argmax at every generated position when the ranks read ``seq`` in one pass."""

    def body(e: Engine) -> np.ndarray:
        e.reset()
        picked: np.ndarray = np.argmax(e.prefill(seq, all_logits=True)[len(ids) - 1 : -1], axis=-1)
        return picked

    return run_ranks(engines, body)[0]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--kernels", default="onnxruntime")
    ap.add_argument("--activations", default="exact")
    ap.add_argument("--tokens", type=int, default=32)
    args = ap.parse_args()
    info = load_model_info(demo_model_path())
    f32 = ranks(args.kernels, args.activations, "f32")
    q80 = ranks(args.kernels, args.activations, "q80")
    sent: dict[str, list[float]] = {"f32": [], "q80": []}
    speed: dict[str, list[float]] = {"f32": [], "q80": []}
    same = control = total = identical = 0
    prefix: list[int] = []
    for text in PROMPTS:
        ids = info.tokenizer.encode(text)
        want, b, s = generate(f32, ids, args.tokens)
        sent["f32"].append(b)
        speed["f32"].append(s)
        got, b, s = generate(q80, ids, args.tokens)
        sent["q80"].append(b)
        speed["q80"].append(s)
        seq = [*ids, *want]
        target = np.array(want)
        same += int((forced(q80, ids, seq) == target).sum())
        control += int((forced(f32, ids, seq) == target).sum())
        total += len(want)
        identical += int(got == want)
        prefix.append(next((i for i, (a, c) in enumerate(zip(got, want, strict=True)) if a != c),
                           len(want)))  # fmt: skip
    f, q = statistics.mean(sent["f32"]), statistics.mean(sent["q80"])
    print(f"demo model, TP=2 in-process, {args.kernels} kernels, {args.activations} "
          f"activations, {len(PROMPTS)} prompts x {args.tokens} tokens, greedy")  # fmt: skip
    print(f"bytes/token sent by one rank: f32 {f:,.0f}  q80 {q:,.0f}  ratio {q / f:.3f}")
    print(f"decode tok/s (median, in-process): f32 {statistics.median(speed['f32']):.1f}  "
          f"q80 {statistics.median(speed['q80']):.1f}")  # fmt: skip
    print(f"top-1 agreement with f32, teacher-forced: q80 {same / total:.4f} "
          f"({same}/{total}); control f32 one-pass {control / total:.4f}")  # fmt: skip
    print(f"free-running: {identical}/{len(PROMPTS)} prompts identical over {args.tokens} "
          f"tokens; mean common prefix {statistics.mean(prefix):.1f} tokens")  # fmt: skip


if __name__ == "__main__":
    main()
