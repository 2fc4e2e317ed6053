"""Wall time from starting `mesh inference --local --model demo` to its first token, and
the command's peak RSS, beside the issue's targets (1.5 s, 350 MB).

    .venv/bin/python bench/first_token.py              # 5 runs, median and spread
    .venv/bin/python bench/first_token.py --runs 9 --threads 2 --breakdown

Each run starts the venv's `mesh` console script (the command a user types), streams
its stdout and stamps the first byte of generated text, with the CPU seconds the command
had used by then (a figure a busy machine distorts less than wall time); the peak RSS is
the child's own ``ru_maxrss`` (``os.wait4``). ``--breakdown`` also gives, in a fresh
interpreter, the CPU seconds of each stage before the first token: imports, model
metadata and tokenizer, weights, prefill. The machine is shared: compare medians of one
run, never single figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 1.5
TARGET_MB = 350.0
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
BREAKDOWN = """
import time
t0 = time.process_time()
from reconciler.inference import Engine, full_share, load_model_info, load_shard
from reconciler.models import resolve_model
t1 = time.process_time()
info = load_model_info(resolve_model("demo"))
t2 = time.process_time()
weights = load_shard(info.path, info.config, full_share(info.config))
t3 = time.process_time()
ids = info.tokenizer.encode({prompt!r})
Engine(info.config, weights, cache_len=len(ids) + 8).prefill(ids)
t4 = time.process_time()
print(t1 - t0, t2 - t1, t3 - t2, t4 - t3)
"""


def mesh_command() -> list[str]:
    """The `mesh` console script beside this interpreter (else the module)."""
    script = Path(sys.executable).parent / "mesh"
    return [str(script)] if script.exists() else [sys.executable, "-m", "reconciler.entry.mesh"]


def environment(threads: int | None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if threads is not None:
        env.update({v: str(threads) for v in THREAD_VARS})
    return env


def one_run(args: argparse.Namespace) -> tuple[float, float, float, float]:
    """Seconds to the first output byte, seconds to exit, peak RSS in MB, and the CPU
    seconds the command had used at its first output byte, of one command."""
    cmd = [*mesh_command(), "inference", "--local", "--model", "demo",
           "--max-tokens", str(args.max_tokens), "--prompt", args.prompt]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment(args.threads)
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = os.read(proc.stdout.fileno(), 65536)
    first_at = time.perf_counter() - start
    try:
        times = psutil.Process(proc.pid).cpu_times()
        cpu = times.user + times.system
    except psutil.Error:  # already gone
        cpu = float("nan")
    proc.stdout.read()
    errors = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    total = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 or not first:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {errors.decode()[-500:]}")
    return first_at, total, usage.ru_maxrss / 1024, cpu  # ru_maxrss: kilobytes on Linux


def breakdown(args: argparse.Namespace) -> list[float]:
    """CPU seconds of imports, metadata + tokenizer, weights, prefill in a fresh interpreter."""
    code = BREAKDOWN.format(prompt=args.prompt)
    done = subprocess.run(
        [sys.executable, "-c", code], env=environment(args.threads),
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return [float(x) for x in done.stdout.split()]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--max-tokens", type=int, default=8)
    p.add_argument("--prompt", default="The capital of France is")
    p.add_argument("--threads", type=int, default=None, help="BLAS threads (default: unset)")
    p.add_argument("--breakdown", action="store_true", help="time the stages too")
    args = p.parse_args()
    print(f"command: {' '.join(mesh_command())} inference --local --model demo "
          f"--max-tokens {args.max_tokens} --prompt {args.prompt!r}")  # fmt: skip
    runs = [one_run(args) for _ in range(args.runs)]
    firsts, totals, rss, cpus = (sorted(r[i] for r in runs) for i in range(4))
    first, rss_mid = statistics.median(firsts), statistics.median(rss)
    print(f"{'':24} {'median':>8} {'min':>8} {'max':>8} {'target':>8}")
    print(f"{'start to first token s':24} {first:8.2f} {firsts[0]:8.2f} {firsts[-1]:8.2f} "
          f"{TARGET_S:8.2f}  {'met' if first <= TARGET_S else 'NOT met'}")  # fmt: skip
    print(f"{'CPU s to first token':24} {statistics.median(cpus):8.2f} {cpus[0]:8.2f} "
          f"{cpus[-1]:8.2f}  (less sensitive to a busy machine)")  # fmt: skip
    print(f"{'start to exit s':24} {statistics.median(totals):8.2f} {totals[0]:8.2f} "
          f"{totals[-1]:8.2f}")  # fmt: skip
    print(f"{'peak RSS MB':24} {rss_mid:8.0f} {rss[0]:8.0f} {rss[-1]:8.0f} {TARGET_MB:8.0f}  "
          f"{'met' if rss_mid <= TARGET_MB else 'NOT met'}")  # fmt: skip
    if args.breakdown:
        stages = [breakdown(args) for _ in range(max(1, args.runs // 2))]
        names = ("imports", "metadata + tokenizer", "weights", "prefill")
        print("stages (fresh interpreter, median CPU s): " + ", ".join(
            f"{n} {statistics.median(s[i] for s in stages):.2f}" for i, n in enumerate(names)
        ))  # fmt: skip


if __name__ == "__main__":
    main()
