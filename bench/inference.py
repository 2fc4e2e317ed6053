"""Decode and prefill speed of the engine against llama.cpp and transformers, side by side.

    .venv/bin/python bench/inference.py                  # all systems, 2 threads
    .venv/bin/python bench/inference.py --threads 1 --rounds 7
    .venv/bin/python bench/inference.py --only engine    # skip the reference systems

Same file (the demo model, SmolLM2-135M-Instruct Q4_1), same prompt tokens, same
thread count. Every system runs in a process of its own (thread pools are per process),
the systems take turns round by round (the machine is shared: its load moves), and the
medians are printed: tokens/s and CPU milliseconds per token (all threads of the
process; the figure a shared machine's load moves least). The references run in the
side venv (``--refvenv``, default /work/refvenv: ``llama-cpp-python`` and ``torch`` +
``transformers``); a missing one is reported and skipped.

``ours ggml`` is the ggml kernels on the file's own blocks (8-bit activations).

Our systems run with transparent huge pages, as ``mesh`` runs them
(``reconciler/hugepages.py``: ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1``); ``ours int8 4k
pages`` is the int8 engine without them. ``llama.cpp`` runs as llama-cpp-python's
defaults do (its weights memory-mapped from the file: page-cache pages, 4 KiB);
``llama.cpp hugepg`` reads them into malloc'd memory instead (``use_mmap=False``), with
the same tunable, so both sides' huge-page figures are in the same run.

Also printed: int8-activation top-1 agreement with exact activations (onnxruntime int8
and ggml) over a fixed
prompt set (teacher-forced: both read the exact run's tokens), and peak RSS and
command-start-to-first-token of ``mesh inference --local --model demo --max-tokens 8``.
Figures only: no assertions.
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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# network safety: the reference systems read local files only and report nothing home
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "ORT_DISABLE_TELEMETRY": "1"}
sys.path.insert(0, str(ROOT))


SMALL = ":small-pages"  # our engine without transparent huge pages (MESHNET_HUGE_PAGES=0)
HUGE = ":huge-pages"  # llama.cpp reading its weights into malloc'd memory, with THP (see main)
PROMPT = "The mesh of devices on the local network serves a language model together. " * 8
AGREEMENT_PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):",
    "Once upon a time, in a small village,",
    "The three laws of thermodynamics state that",
    "To make a cup of tea, first",
    "In 1969, the first humans to walk on the Moon",
    "Photosynthesis is the process by which",
    "The best way to learn a new language is",
    "The history of the printing press",
    "import numpy as np\n",
    "Dear hiring manager,",
    "The recipe calls for",
]


def demo_model_path() -> Path:
    from reconciler.inference.demo import demo_model_path as find

    return find()


Figures = list[float]  # prefill tok/s, decode tok/s, CPU ms per token: prefill, decode


class Clock:
    """Wall and CPU time (this process, every thread) of consecutive laps."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        self.figures: Figures = []

    def lap(self, tokens: int) -> Figures:
        """Record tokens/s and CPU ms per token since the last lap; all figures so far
        in the order of ``Figures`` once both laps are done."""
        wall, cpu = time.perf_counter(), time.process_time()
        self.figures += [tokens / (wall - self.wall), (cpu - self.cpu) / tokens * 1000]
        self.wall, self.cpu = wall, cpu
        f = self.figures
        return [f[0], f[2], f[1], f[3]] if len(f) == 4 else f


class Engine:
    """Our engine with one kernel choice (in this process)."""

    def __init__(self, kernels: str, activations: str, threads: int) -> None:
        from reconciler.inference import Engine as E
        from reconciler.inference import full_share, load_model_info, load_shard

        path = demo_model_path()
        info = load_model_info(path)
        w = load_shard(
            path, info.config, full_share(info.config), None, kernels, activations, threads
        )
        self.engine = E(info.config, w, cache_len=512)
        self.tokenizer = info.tokenizer

    def round(self, prompt: list[int], decode: int) -> Figures:
        e = self.engine
        e.reset()
        clock = Clock()
        logits = e.prefill(prompt)
        clock.lap(len(prompt))
        for _ in range(decode):
            logits = e.decode(int(np.argmax(logits)))
        return clock.lap(decode)


class Child:
    """A reference system in a child process of the side venv, one round per request."""

    def __init__(self, python: str, name: str, threads: int) -> None:
        """Each system in a process of its own: thread pools are per process."""
        args = [python, str(Path(__file__).resolve()), "--serve", name, "--threads", str(threads),
                "--model-path", str(demo_model_path())]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads),
               "PYTHONPATH": str(ROOT), **OFFLINE}  # fmt: skip
        if name.startswith("ours") or name.endswith(HUGE):  # as `mesh` runs them (hugepages.py)
            from reconciler.hugepages import SWITCH_ENV, huge_pages_env

            env = huge_pages_env({**env, SWITCH_ENV: "0" if name.endswith(SMALL) else "1"})
        self.proc = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        ready = self.proc.stdout.readline() if self.proc.stdout else ""
        if not ready.startswith("ready"):
            self.proc.kill()
            raise RuntimeError(ready.strip() or f"{name} did not start")

    def round(self, prompt: list[int], decode: int) -> Figures:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps({"prompt": prompt, "decode": decode}) + "\n")
        self.proc.stdin.flush()
        return [float(v) for v in json.loads(self.proc.stdout.readline())]

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


def serve(name: str, threads: int, path: Path) -> None:
    """Child side (the side venv): load the reference, then answer rounds on stdin/stdout."""
    here = str(Path(__file__).resolve().parent)  # bench/kernels.py shadows HF's `kernels`
    sys.path[:] = [p for p in sys.path if str(Path(p or ".").resolve()) != here]
    try:
        if name.startswith("ours"):
            _kind, kernels, activations = name.removesuffix(SMALL).split(":")
            runner = Engine(kernels, activations, threads).round
        elif name.startswith("llama.cpp"):
            runner = _llama_cpp(threads, path, mmap=not name.endswith(HUGE))
        else:
            runner = _transformers(threads, path)
    except Exception as exc:  # reported by the parent, which skips this system
        print(f"unavailable: {type(exc).__name__}: {exc}", flush=True)
        return
    print("ready", flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        print(json.dumps(runner(req["prompt"], req["decode"])), flush=True)


def _llama_cpp(threads: int, path: Path, mmap: bool = True) -> Any:
    from llama_cpp import Llama

    llm = Llama(str(path), n_threads=threads, n_threads_batch=threads, n_ctx=512, verbose=False,
                use_mmap=mmap)  # fmt: skip

    def run(prompt: list[int], decode: int) -> Figures:
        llm.reset()
        clock = Clock()
        llm.eval(prompt)
        clock.lap(len(prompt))
        for _ in range(decode):
            llm.eval([int(np.argmax(llm.scores[llm.n_tokens - 1]))])
        return clock.lap(decode)

    return run


def _transformers(threads: int, path: Path) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(threads)
    model: Any = AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=torch.float32
    )
    model.eval()

    def run(prompt: list[int], decode: int) -> Figures:
        with torch.no_grad():
            clock = Clock()
            out = model(torch.tensor([prompt]), use_cache=True)
            clock.lap(len(prompt))
            past, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
            for _ in range(decode):
                out = model(nxt, past_key_values=past, use_cache=True)
                past, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
        return clock.lap(decode)

    return run


def agreement(
    threads: int, kernels: str = "onnxruntime", new_tokens: int = 96
) -> tuple[float, float, int]:
    """Top-1 agreement of int8 activations (on ``kernels``) with exact ones, teacher-forced,
    and the mean KL divergence of their next-token distributions from exact's."""
    exact, fast = Engine("onnxruntime", "exact", threads), Engine(kernels, "int8", threads)
    same = total = 0
    kl = 0.0
    for text in AGREEMENT_PROMPTS:
        ids = exact.tokenizer.encode(text)
        e = exact.engine
        e.reset()
        logits = e.prefill(ids)
        seq = list(ids)
        for _ in range(new_tokens):
            seq.append(int(np.argmax(logits)))
            logits = e.decode(seq[-1])
        e.reset()
        want = _log_softmax(e.prefill(seq, all_logits=True)[len(ids) - 1 :])
        fast.engine.reset()
        got = _log_softmax(fast.engine.prefill(seq, all_logits=True)[len(ids) - 1 :])
        same += int((np.argmax(want, axis=-1) == np.argmax(got, axis=-1)).sum())
        kl += float((np.exp(want) * (want - got)).sum())
        total += len(want)
    return same / total, kl / total, total


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    result: np.ndarray = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return result


def command_figures(threads: int, runs: int = 3) -> list[tuple[float, float]]:
    """(peak RSS MB, start-to-first-token ms) of the local demo command, per run."""
    out = []
    for _ in range(runs):
        cmd = [sys.executable, "-m", "reconciler.entry.mesh", "inference", "--local", "--model", "demo",
               "--max-tokens", "8", "--prompt", "The capital of France is", "-o", "json",
               "--threads", str(threads)]  # fmt: skip
        if Path("/usr/bin/time").exists():
            cmd = ["/usr/bin/time", "-f", "MAXRSS %M", *cmd]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
        doc = json.loads(done.stdout)
        rss = [line for line in done.stderr.splitlines() if line.startswith("MAXRSS")]
        out.append(
            (
                int(rss[-1].split()[1]) / 1024 if rss else float("nan"),
                doc.get("startToFirstTokenMs", float("nan")),
            )
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--prompt-tokens", type=int, default=64)
    ap.add_argument("--decode-tokens", type=int, default=64)
    ap.add_argument("--refvenv", default="/work/refvenv")
    ap.add_argument("--only", choices=["all", "engine"], default="all")
    ap.add_argument(
        "--skip", default="", help="comma-separated systems to leave out, e.g. 'ours numpy'"
    )
    ap.add_argument(
        "--no-extras", action="store_true", help="skip the agreement and command figures"
    )
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    ap.add_argument("--model-path", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, args.threads, Path(args.model_path))
        return
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(args.threads))
    from reconciler.inference import load_model_info

    prompt = load_model_info(demo_model_path()).tokenizer.encode(PROMPT)[: args.prompt_tokens]
    systems: dict[str, Child] = {}
    ref_python = str(Path(args.refvenv) / "bin" / "python")
    candidates = [("ours numpy", sys.executable, "ours:numpy:exact"),
                  ("ours ort exact", sys.executable, "ours:onnxruntime:exact"),
                  ("ours ort int8", sys.executable, "ours:onnxruntime:int8"),
                  ("ours ggml", sys.executable, "ours:ggml:int8"),
                  ("ours int8 4k pages", sys.executable, f"ours:onnxruntime:int8{SMALL}")]  # fmt: skip
    if args.only == "all":
        candidates += [
            ("llama.cpp", ref_python, "llama.cpp"),
            ("llama.cpp hugepg", ref_python, f"llama.cpp{HUGE}"),
            ("transformers fp32", ref_python, "transformers"),
        ]
    for label, python, name in candidates:
        if label in args.skip.split(","):
            continue
        try:
            systems[label] = Child(python, name, args.threads)
        except (OSError, RuntimeError) as exc:
            print(f"{label:18} skipped: {exc}")
    results: dict[str, list[Figures]] = {name: [] for name in systems}
    for system in systems.values():  # warm-up
        system.round(prompt[:8], 4)
    for r in range(args.rounds):
        for name, system in systems.items():
            results[name].append(system.round(prompt, args.decode_tokens))
            print(f"  round {r + 1} {name:18} {results[name][-1]}", file=sys.stderr, flush=True)
    print(f"demo model, {args.threads} threads, prompt {len(prompt)} tokens, decode "
          f"{args.decode_tokens}, medians of {args.rounds} interleaved rounds; CPU = ms of CPU "
          "time (all threads of the process) per token, the figure least moved by a shared "
          "machine's load")  # fmt: skip
    med = {n: [statistics.median(r[i] for r in rs) for i in range(4)] for n, rs in results.items()}
    ref = med.get("llama.cpp")
    for name, (prefill, decode, cpu_p, cpu_d) in med.items():
        rel = ""
        if ref:
            rel = (f"  | vs llama.cpp: prefill {prefill / ref[0]:.2f}x decode {decode / ref[1]:.2f}x"
                   f", per CPU ms: prefill {ref[2] / cpu_p:.2f}x decode {ref[3] / cpu_d:.2f}x")  # fmt: skip
        print(f"{name:18} prefill {prefill:7.1f} tok/s (CPU {cpu_p:5.2f}) decode {decode:6.1f} "
              f"tok/s (CPU {cpu_d:5.2f}){rel}")  # fmt: skip
    for child in systems.values():
        child.close()
    systems.clear()
    if args.no_extras:
        return
    for kernels, label in (("onnxruntime", "onnxruntime int8"), ("ggml", "ggml (8-bit)")):
        rate, kl, n = agreement(args.threads, kernels)
        print(f"{label} vs exact activations: top-1 agreement {100 * rate:.1f}% over {n} "
              f"teacher-forced positions, mean KL {kl:.4f} nats")  # fmt: skip
    figures = command_figures(args.threads)
    rss = statistics.median(f[0] for f in figures)
    ttft = statistics.median(f[1] for f in figures)
    print(f"mesh inference --local --model demo --max-tokens 8: peak RSS {rss:.0f} MB, "
          f"start to first token {ttft:.0f} ms (medians of {len(figures)})")  # fmt: skip


if __name__ == "__main__":
    main()
