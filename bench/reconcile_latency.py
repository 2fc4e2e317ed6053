"""Apply -> status latency of the agent: p50/p99 over N objects.

Starts a real agent process on a temporary MESHNET_HOME, then applies objects one at a
time through the store (as `meshctl apply` does) and measures the time until the
agent has written a status for that generation (`observedGeneration`). A second pass
applies all N at once and measures until every one is reconciled.

    python bench/reconcile_latency.py [--count 100] [--kind Pool|Job]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from manifests import MeshObject, load_text
from reconciler.home import Home
from reconciler.node import init_node
from reconciler.store import Store

TEMPLATES = {
    "Pool": "apiVersion: meshnet.dev/v1alpha1\nkind: Pool\nmetadata: {{name: {name}}}\n",
    "Job": (
        "apiVersion: meshnet.dev/v1alpha1\nkind: Job\nmetadata: {{name: {name}}}\n"
        "spec: {{pool: elsewhere, prompt: hi}}\n"  # stays Pending: nothing runs
    ),
}


def make(kind: str, name: str) -> MeshObject:
    return load_text(TEMPLATES[kind].format(name=name), "bench")[0].obj


def reconciled(store: Store, kind: str, name: str) -> bool:
    obj = store.get(kind, name)
    return obj is not None and obj.status.observed_generation == obj.metadata.generation


def wait(store: Store, kind: str, names: list[str], timeout: float = 30.0) -> None:
    deadline = time.perf_counter() + timeout
    pending = set(names)
    while pending:
        pending = {n for n in pending if not reconciled(store, kind, n)}
        if time.perf_counter() > deadline:
            raise SystemExit(f"timed out with {len(pending)} objects unreconciled")
        time.sleep(0.001)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--kind", choices=sorted(TEMPLATES), default="Pool")
    args = parser.parse_args()
    home = Home(Path(tempfile.mkdtemp(prefix="meshnet-bench-")))
    init_node(home, "bench", "bench")
    env = {
        **os.environ,
        "MESHNET_HOME": str(home.root),
        "MESHNET_BEACON_INTERFACE": "127.0.0.1",  # the pools' beacons stay on loopback
        "MESHNET_BEACON_PORT": "42999",
    }
    agent = subprocess.Popen(
        [sys.executable, "-m", "reconciler.entry", "agent", "--log-level", "WARNING"],
        env=env, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        with Store.open(home.root) as store:
            store.apply(make("Pool", "bench-pool"))
            wait(store, "Pool", ["bench-pool"])
            latencies = []
            for i in range(args.count):
                name = f"one-{i}"
                start = time.perf_counter()
                store.apply(make(args.kind, name))
                wait(store, args.kind, [name])
                latencies.append((time.perf_counter() - start) * 1000)
            names = [f"batch-{i}" for i in range(args.count)]
            start = time.perf_counter()
            for name in names:
                store.apply(make(args.kind, name))
            wait(store, args.kind, names)
            batch = (time.perf_counter() - start) * 1000
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(60)
    print(f"apply -> status latency, {args.count} {args.kind} objects applied one at a time:")
    print(f"  p50 {percentile(latencies, 0.5):7.1f} ms")
    print(f"  p99 {percentile(latencies, 0.99):7.1f} ms   (target <= 200 ms)")
    print(f"  max {max(latencies):7.1f} ms   mean {statistics.mean(latencies):.1f} ms")
    print(f"{args.count} {args.kind} objects applied at once: all reconciled in {batch:.0f} ms")


if __name__ == "__main__":
    main()
