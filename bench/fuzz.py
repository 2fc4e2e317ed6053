"""Long fuzz run of every wire decoder and the manifest loader.

    PYTHONPATH=. python bench/fuzz.py                  # 100,000 inputs per decoder
    PYTHONPATH=. python bench/fuzz.py --runs 20000 --only gossip beacon

Each decoder of tests/fuzzing/targets.py runs in its own process. With atheris
installed (``pip install atheris``) the run is coverage-guided (libFuzzer, seeded
with valid inputs); without it, a mutation loop (valid inputs mutated, and random
bytes) with the same contract. Each run is bounded by ``--runs`` inputs and
``--seconds`` of wall time. Prints, per decoder: inputs run, crashes, seconds,
inputs per second and (atheris) coverage; exits 1 if anything crashed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fuzzing.targets import TARGETS, mutate  # noqa: E402


def have_atheris() -> bool:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


# -- child: one decoder ---------------------------------------------------------------


def child_atheris(name: str, runs: int, seconds: int, workdir: Path) -> None:
    import atheris

    target = TARGETS[name]
    corpus = workdir / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    with atheris.instrument_imports(include=["reconciler", "manifests", "tests.fuzzing"]):
        seeds = target.seeds()  # the first calls import what the target uses: instrumented
        for seed in seeds:
            target.run(seed)
    for i, seed in enumerate(seeds):
        (corpus / f"seed-{i}").write_bytes(seed)
    args = [
        sys.argv[0], str(corpus), f"-runs={runs}", f"-max_total_time={seconds}",
        f"-artifact_prefix={workdir}/", "-max_len=4096", "-timeout=10",
        "-rss_limit_mb=2048", "-print_final_stats=1",
    ]  # fmt: skip
    atheris.Setup(args, target.run)
    atheris.Fuzz()


def child_loop(name: str, runs: int, seconds: int, workdir: Path) -> None:
    target = TARGETS[name]
    seeds = target.seeds()
    rng = random.Random(0)
    crashes, done, start = 0, 0, time.monotonic()
    while done < runs and time.monotonic() - start < seconds:
        random_bytes = done % 4 == 3
        seed = rng.choice(seeds)
        data = rng.randbytes(rng.randint(0, 600)) if random_bytes else mutate(seed, rng, seeds)
        done += 1
        try:
            target.run(data)
        except Exception:
            crashes += 1
            if crashes <= 3:
                (workdir / f"crash-{crashes}").write_bytes(data)
                traceback.print_exc()
    print(json.dumps({"runs": done, "crashes": crashes}), file=sys.stderr)


# -- parent ---------------------------------------------------------------------------


def run_one(name: str, runs: int, seconds: int, engine: str) -> dict[str, object]:
    workdir = Path(tempfile.mkdtemp(prefix=f"fuzz-{name}-"))
    cmd = [sys.executable, __file__, "--child", name, "--engine", engine, "--workdir",
           str(workdir), "--runs", str(runs), "--seconds", str(seconds)]  # fmt: skip
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=seconds + 120)
    took = time.monotonic() - start
    log = proc.stderr
    row: dict[str, object] = {"decoder": name, "seconds": round(took, 1), "exit": proc.returncode}
    if engine == "atheris":
        done = re.findall(r"stat::number_of_executed_units: (\d+)", log)
        cov = re.findall(r"cov: (\d+) ft: (\d+)", log)
        row["runs"] = int(done[-1]) if done else None
        row["coverage"] = f"cov {cov[-1][0]} ft {cov[-1][1]}" if cov else ""
        row["crashes"] = len(list(workdir.glob("crash-*"))) + len(list(workdir.glob("timeout-*")))
    else:
        last = json.loads(log.strip().splitlines()[-1]) if log.strip() else {}
        row["runs"], row["crashes"] = last.get("runs"), last.get("crashes")
    if row["crashes"] or proc.returncode not in (0,):
        row["log"] = "\n".join(log.strip().splitlines()[-25:])
        row["workdir"] = str(workdir)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=100_000, help="inputs per decoder")
    parser.add_argument("--seconds", type=int, default=600, help="wall-time cap per decoder")
    parser.add_argument("--only", nargs="*", default=sorted(TARGETS), choices=sorted(TARGETS))
    parser.add_argument("--engine", choices=("atheris", "loop"), default=None)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args, _ = parser.parse_known_args()
    engine = args.engine or ("atheris" if have_atheris() else "loop")
    if args.child:
        run = child_atheris if engine == "atheris" else child_loop
        run(args.child, args.runs, args.seconds, args.workdir)
        return 0
    print(f"engine: {engine}; {args.runs} inputs or {args.seconds} s per decoder")
    print(f"{'decoder':<10} {'inputs':>9} {'crashes':>8} {'seconds':>8} {'inputs/s':>9}  coverage")
    failed = False
    for name in args.only:
        row = run_one(name, args.runs, args.seconds, engine)
        runs, secs = row["runs"] or 0, float(row["seconds"])  # type: ignore[arg-type]
        rate = runs / secs if secs else 0.0  # type: ignore[operator]
        print(f"{name:<10} {runs:>9} {row['crashes']!s:>8} {secs:>8.1f} {rate:>9.0f}  "
              f"{row.get('coverage', '')}", flush=True)  # fmt: skip
        if row.get("log"):
            failed = True
            print(f"--- {name}: exit {row['exit']}, artifacts in {row['workdir']}\n{row['log']}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
