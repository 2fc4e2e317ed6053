"""CPU of idle agents: a converged two-member pool on loopback, each agent's share of a
core over a window (issue 13's target: at most 0.3% of a core over 60 s).

Two agents (an admin and a member that joined with a token) run as separate processes
with homes of their own; beacons stay on loopback (MESHNET_BEACON_INTERFACE=127.0.0.1,
TTL 0) on a random port. Once both see a converged ring of two, the bench waits for
start-up work to settle, then reads each agent's CPU time (psutil, user + system) before
and after the window. Run it from the tree to measure (its code is what the agents run):

    cd TREE && OPENBLAS_NUM_THREADS=1 PYTHONPATH=. python bench/idle_cpu.py [--seconds 60] [--runs 2]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "e2e")]

import pool_steps  # noqa: E402
from agents import WATCHED, wait_for  # noqa: E402
from lan import Device, Lan  # noqa: E402
from pool_steps import make_token, request_join, ring_of, start_admin, wait_joined  # noqa: E402

TARGET_PERCENT = 0.3
SETTLE_SECONDS = 10.0
THREAD_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MESHNET_THREADS": "1"}


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def converged_pool(lan: Lan) -> tuple[Device, Device]:
    """An admin and a member in a converged ring, with the Pool's default discovery
    (beacons every 5 s; the e2e manifest's 1 s would be a busier pool than a user's)."""
    pool_steps.POOL_YAML = pool_steps.POOL_YAML.replace(
        "  discovery:\n    beaconInterval: 1s\n", ""
    )
    admin, member = lan.add("device1"), lan.add("device2")
    for device in (admin, member):
        device.extra_env = dict(THREAD_ENV)
    pool = start_admin(admin)
    request_join(member, pool, make_token(admin))
    wait_joined(member)
    for device in (admin, member):
        wait_for(functools.partial(ring_of, device, 2), 60, "ring of 2")
    return admin, member


def one_run(seconds: float) -> dict[str, float]:
    """Each agent's CPU over ``seconds`` once the pool converged, in % of one core."""
    with tempfile.TemporaryDirectory(prefix="idle-cpu-") as tmp:
        lan = Lan(Path(tmp), use_netns=False)  # loopback only
        WATCHED[:] = [Path(tmp)]  # wait_for wakes on what the agents write there
        try:
            devices = converged_pool(lan)
            time.sleep(SETTLE_SECONDS)  # start-up work (first measures, certificates) ends
            processes = {d.name: psutil.Process(d.processes[-1].proc.pid) for d in devices}
            before = {name: cpu_seconds(p) for name, p in processes.items()}
            started = time.monotonic()
            time.sleep(seconds)
            elapsed = time.monotonic() - started
            return {
                name: (cpu_seconds(p) - before[name]) / elapsed * 100.0
                for name, p in processes.items()
            }
        finally:
            lan.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    runs: list[dict[str, float]] = []
    for number in range(1, args.runs + 1):
        figures = one_run(args.seconds)
        runs.append(figures)
        shown = ", ".join(f"{name} {value:.3f}%" for name, value in figures.items())
        print(f"run {number}: {shown} of a core over {args.seconds:.0f} s", flush=True)
    for name in runs[0]:
        median = statistics.median(run[name] for run in runs)
        verdict = "PASS" if median <= TARGET_PERCENT else "FAIL"
        print(f"{name}: median {median:.3f}% of a core over {args.seconds:.0f} s, "
              f"target <= {TARGET_PERCENT}%: {verdict}")  # fmt: skip


if __name__ == "__main__":
    main()
