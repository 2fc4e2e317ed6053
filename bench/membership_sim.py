"""Simulated membership figures: join convergence and crash -> re-formed ring.

Runs the sans-IO gossip machines on the simulated network of ``tests/sim/simnet.py``
(simulated time, deterministic by seed) and prints median and worst times over a few
seeds, without loss and with 10% loss (plus duplication and reordering).

    .venv/bin/python bench/membership_sim.py [--seeds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.sim.simnet import LinkModel, SimNet, start_pool

LINKS = {
    "no loss": LinkModel(),
    "10% loss": LinkModel(loss=0.10, duplicate=0.05, reorder=0.2, delay=(0.0005, 0.01)),
}


def join_time(n: int, seed: int, link: LinkModel) -> float | None:
    net = SimNet(seed=seed, link=link)
    start_pool(net, n)
    return net.run_until(net.converged, max_time=60.0)


def crash_time(n: int, seed: int, link: LinkModel) -> float | None:
    net = SimNet(seed=seed, link=link)
    ids = start_pool(net, n)
    if net.run_until(net.converged, max_time=60.0) is None:
        return None
    net.run_for(1.0 + net.rng.random())
    net.crash(ids[-1])
    crashed_at = net.now
    took = net.run_until(lambda: net.converged(ids[:-1]), max_time=60.0)
    return None if took is None else took - crashed_at


def summary(values: list[float | None]) -> str:
    done = [v for v in values if v is not None]
    failed = len(values) - len(done)
    if not done:
        return "never"
    text = f"median {statistics.median(done):5.2f} s  max {max(done):5.2f} s"
    return text + (f"  ({failed} did not converge)" if failed else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    seeds = range(args.seeds)
    started = time.perf_counter()
    for label, link in LINKS.items():
        print(f"== {label}")
        for n in (2, 3, 8, 16, 32, 64):
            print(f"join convergence  N={n:<3} {summary([join_time(n, s, link) for s in seeds])}")
        for n in (2, 3):
            print(f"crash -> ring     N={n:<3} {summary([crash_time(n, s, link) for s in seeds])}")
    print(f"(wall time {time.perf_counter() - started:.1f} s; times above are simulated)")


if __name__ == "__main__":
    main()
