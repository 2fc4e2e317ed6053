"""Time of short CLI commands (startup is nearly all imports): medians over N runs.

Each command runs as a fresh process on a temporary MESHNET_HOME holding a device
identity, a Pool and a Job, beside `python -c pass` (the interpreter's own floor).
Wall time and CPU time (user + system, less disturbed by a busy machine) are printed.
With `--before DIR` (a checkout of an older tree) each command also runs from that
tree, interleaved in the same run, so that both sides see the same load.

    python bench/cli_startup.py [--runs 15] [--before /tmp/old-meshnet] [--empty]

`--empty`: the store holds the device identity only (no Pool, no Job).

Where the time goes: `python -X importtime -m reconciler.entry version 2>&1 | sort -t'|' -k2 -n`.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMANDS: dict[str, list[str]] = {
    "python -c pass": ["-c", "pass"],
    "meshctl version": ["-m", "reconciler.entry", "version"],
    "meshctl get pools": ["-m", "reconciler.entry", "get", "pools"],
    "meshctl get jobs": ["-m", "reconciler.entry", "get", "jobs"],
    "meshctl get members": ["-m", "reconciler.entry", "get", "members"],
    "meshctl get peers": ["-m", "reconciler.entry", "get", "peers"],
    "meshctl --help": ["-m", "reconciler.entry", "--help"],
}
MANIFESTS = """\
apiVersion: meshnet.dev/v1alpha1
kind: Pool
metadata: {name: bench-pool}
---
apiVersion: meshnet.dev/v1alpha1
kind: Job
metadata: {name: hello}
spec: {pool: bench-pool, prompt: Hello world}
"""


def prepare(home: Path, env: dict[str, str], empty: bool) -> None:
    manifest = home / "objects.yaml"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(MANIFESTS)
    steps = [["init", "--name", "bench"]] + ([] if empty else [["apply", "-f", str(manifest)]])
    for args in steps:
        subprocess.run([sys.executable, "-m", "reconciler.entry", *args], env=env, check=True,
                       capture_output=True)  # fmt: skip


def run_once(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU milliseconds of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    # cwd: `-m` puts the current folder first on sys.path; run from the home instead
    subprocess.run([sys.executable, *args], env=env, check=True, capture_output=True,
                   cwd=env["MESHNET_HOME"])  # fmt: skip
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall * 1000.0, cpu * 1000.0


def measure(
    trees: dict[str, Path], runs: int, env: dict[str, str]
) -> dict[str, list[tuple[float, float]]]:
    samples: dict[str, list[tuple[float, float]]] = {}
    for _ in range(runs):
        for command, args in COMMANDS.items():
            for label, tree in trees.items():
                key = f"{command} [{label}]" if len(trees) > 1 else command
                tree_env = {**env, "PYTHONPATH": str(tree)}
                samples.setdefault(key, []).append(run_once(args, tree_env))
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--before", type=Path, help="an older source tree to compare with")
    parser.add_argument("--empty", action="store_true", help="no objects in the store")
    options = parser.parse_args()
    trees = {"now": REPO} if options.before is None else {"before": options.before, "now": REPO}
    with tempfile.TemporaryDirectory(prefix="meshnet-cli-bench-") as tmp:
        env = {**os.environ, "MESHNET_HOME": str(Path(tmp) / "home"), "PYTHONPATH": str(REPO)}
        env.pop("PYDANTIC_DISABLE_PLUGINS", None)
        prepare(Path(tmp) / "home", env, options.empty)
        samples = measure(trees, options.runs, env)
    print(f"median over {options.runs} runs, milliseconds:   wall     cpu  (min wall)")
    for name, values in samples.items():
        walls, cpus = [w for w, _ in values], [c for _, c in values]
        print(f"  {name:<30} {statistics.median(walls):7.1f} {statistics.median(cpus):7.1f}"
              f"  ({min(walls):.1f})")  # fmt: skip


if __name__ == "__main__":
    main()
