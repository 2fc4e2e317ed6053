"""Simulated job figures: how long, in simulated seconds, a job takes to fail after a
member crashes mid-job (gossip's detection, then JOB_ABORT), and how a job fares when a
fifth of the control messages are lost.

Runs agents made of the real beacon, gossip and job machines with a fake engine on the
simulated LAN of ``tests/sim/meshsim.py`` (deterministic by seed) and prints medians.

    .venv/bin/python bench/jobs_sim.py [--seeds 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reconciler.jobs import machineevents as ev
from tests.sim.meshsim import Links, MeshSim
from tests.sim.simnet import LinkModel

PROMPT = [3, 1, 4, 1, 5]


def pool(seed: int, links: Links | None = None) -> tuple[MeshSim, list[str]]:
    sim = MeshSim(seed, links, collective_timeout=30.0)
    for i in range(3):
        sim.add_agent(i)
    if sim.run_until(sim.converged, 30.0) is None:
        raise SystemExit(f"seed {seed}: no ring")
    return sim, sim.ids()


def crash_to_failure(seed: int) -> float | None:
    sim, ids = pool(seed)
    session = sim.coordinate(ids[0], PROMPT, max_tokens=400)
    sim.run_until(lambda: bool(sim.agents[ids[0]].tokens.get(session)), 10.0)
    sim.crash(ids[2])
    crashed = sim.now
    if sim.run_until(lambda: session in sim.agents[ids[0]].outcomes, 60.0) is None:
        return None
    return sim.agents[ids[0]].outcomes[session][0] - crashed


def lossy_outcome(seed: int) -> str:
    sim, ids = pool(seed, Links(control=LinkModel(loss=0.2)))
    session = sim.coordinate(ids[0], PROMPT, max_tokens=10)
    sim.run_until(lambda: session in sim.agents[ids[0]].outcomes, 60.0)
    got = sim.agents[ids[0]].outcomes.get(session)
    if got is None:
        return "hung"
    event = got[1]
    return "succeeded" if isinstance(event, ev.JobSucceeded) else event.error.reason


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    seeds = range(parser.parse_args().seeds)
    wall = time.perf_counter()
    times = [t for t in (crash_to_failure(s) for s in seeds) if t is not None]
    print(f"member crash -> job failed (simulated s, {len(times)} seeds): "
          f"median {statistics.median(times):.2f}, worst {max(times):.2f}")  # fmt: skip
    outcomes = Counter(lossy_outcome(s) for s in seeds)
    print(f"20% control loss, {len(seeds)} seeds: {dict(sorted(outcomes.items()))}")
    print(f"wall time for all of it: {time.perf_counter() - wall:.2f} s")


if __name__ == "__main__":
    main()
