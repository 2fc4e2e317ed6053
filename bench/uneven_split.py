"""Splits by measured speed: a member at half speed gets a smaller share, and the job is faster.

    .venv/bin/python bench/uneven_split.py [--rounds 3] [--max-tokens 48] [-o json]

Two agents in network namespaces of their own (needs root), each pinned to a core of its
own with ``taskset`` and limited to one kernel thread, run tensor-plan jobs of the demo
model (``Job.spec.parallelism: tensor``). A busy loop pinned to the member's core halves
its speed. Both runs below happen while the busy loop runs:

- ``stale``: the member's kernel self-test ran before the busy loop started, so the
  pool believes both members are equally fast and the coordinator cuts the columns
  about evenly; the slowed member holds the job back.
- ``measured``: the member's agent restarts under the busy loop, its self-test measures
  the slowdown, gossip publishes it, and the coordinator cuts the columns by speed.

It prints each run's decode tok/s (median over ``--rounds``), the columns each member
held and the speeds the pool published. Figures only; the machine's load moves them.
Traffic stays inside the namespaces this script creates; it removes them on exit.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "e2e")]

from agents import WATCHED, wait_for  # noqa: E402
from lan import Device, Lan, netns_available  # noqa: E402
from pool_steps import ring_of, two_device_pool  # noqa: E402

THREADS = {"MESHNET_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
PROMPT = "Write a long story about a lighthouse keeper who finds a map in a bottle."
MEASURED = ("rttSeconds", "throughputBytesPerSecond", "speedBytesPerSecond", "freeMemoryBytes")


def pin(device: Device, core: int) -> None:
    """Every process the device starts from now on runs on ``core`` only."""
    inner = device.prefix
    device.prefix = lambda: ["taskset", "-c", str(core), *inner()]  # type: ignore[method-assign]


def pin_running(device: Device, core: int) -> None:
    """The device's running agent (every thread of it) moves to ``core``."""
    for agent in device.processes:
        subprocess.run(["taskset", "-a", "-p", "-c", str(core), str(agent.proc.pid)],
                       check=True, capture_output=True)  # fmt: skip


def peers(device: Device) -> list[dict[str, Any]]:
    return list(json.loads(device.cli("get", "peers", "-o", "json").stdout)["items"])


def measured(device: Device) -> list[dict[str, Any]] | None:
    rows = peers(device)
    return rows if rows and all(r.get(k) for r in rows for k in MEASURED) else None


def speed_of(device: Device, name: str) -> float | None:
    for row in peers(device):
        if row.get("name") == name:
            value = row.get("speedBytesPerSecond")
            return float(value) if value else None
    return None


PLAN = "tensor"  # --plan
MODEL = "demo"  # --model


def node_of(device: Device) -> str:
    return str(json.loads((device.home.root / "node.json").read_text())["node_id"])


def tensor_job(device: Device, tokens: int) -> dict[str, Any]:
    args = ["inference", "-o", "json", "--model", MODEL, "--prompt", PROMPT,
            "--max-tokens", str(tokens), "--parallelism", PLAN]  # fmt: skip
    if MODEL == "demo":
        args.append("--chat")  # the raw prompt ends at once; gemma3-270m has no template
    return dict(json.loads(device.cli(*args, tool="mesh", timeout=600).stdout))


def run(coordinator: Device, rounds: int, tokens: int) -> dict[str, Any]:
    done = [tensor_job(coordinator, tokens) for _ in range(rounds)]
    last = done[-1]["members"]
    return {
        "tokensPerSecond": statistics.median(d["tokensPerSecond"] for d in done),
        "shares": {m["nodeId"]: m.get("layers") or m["columns"] for m in last},
        "plan": done[-1].get("plan", {}),
    }


def restart_agent(device: Device) -> None:
    device.processes[-1].stop()
    device.processes.pop()
    device.start_agent()


def busy_loop(core: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["taskset", "-c", str(core), sys.executable, "-c", "while True: pass"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--plan", default="tensor", choices=("tensor", "pipeline"))
    parser.add_argument("--model", default="demo", help="a model name every member resolves")
    parser.add_argument("-o", "--output", default="text", choices=("text", "json"))
    args = parser.parse_args()
    global PLAN, MODEL
    PLAN, MODEL = args.plan, args.model
    if not netns_available():
        sys.exit("bench/uneven_split.py needs root and network namespaces (ip netns)")
    from reconciler.inference import demo_model_path

    root = Path(tempfile.mkdtemp(prefix="meshnet-uneven-"))
    lan = Lan(root, use_netns=True)
    WATCHED[:] = [root]  # wait_for wakes on what the agents write there
    hog: subprocess.Popen[bytes] | None = None
    doc: dict[str, Any] = {}
    try:
        admin, member = two_device_pool(lan, demo_model_path(), env=THREADS)
        for device, core in ((admin, 0), (member, 1)):
            pin_running(device, core)
            pin(device, core)  # and what it starts later
        wait_for(lambda: measured(admin) and measured(member), 180, "measurements")
        doc["speedsBefore"] = {"member": speed_of(admin, member.name)}
        doc["slowed"] = node_of(member)
        tensor_job(admin, 4)  # warm-up: both members load their columns
        hog = busy_loop(1)
        print("stale speeds (self-test before the busy loop)...", file=sys.stderr, flush=True)
        doc["stale"] = run(admin, args.rounds, args.max_tokens)
        restart_agent(member)
        wait_for(lambda: ring_of(admin, 2), 120, "ring of 2 again")
        before = doc["speedsBefore"]["member"] or 0.0
        wait_for(lambda: (speed_of(admin, member.name) or before) < 0.8 * before, 180,
                 "the slowed member's new speed reaches the coordinator")  # fmt: skip
        wait_for(lambda: measured(admin), 180, "links measured again")
        doc["speedsAfter"] = {"member": speed_of(admin, member.name)}
        tensor_job(admin, 4)  # warm-up with the new split
        print("measured speeds (self-test under the busy loop)...", file=sys.stderr, flush=True)
        doc["measured"] = run(admin, args.rounds, args.max_tokens)
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
        lan.close()
        shutil.rmtree(root, ignore_errors=True)
    doc["speedup"] = doc["measured"]["tokensPerSecond"] / doc["stale"]["tokensPerSecond"]
    if args.output == "json":
        print(json.dumps(doc, indent=2))
        return
    gb = 1e9
    print(f"member's kernel speed: {doc['speedsBefore']['member'] / gb:.2f} GB/s before the "
          f"busy loop, {doc['speedsAfter']['member'] / gb:.2f} GB/s under it")  # fmt: skip
    for key in ("stale", "measured"):
        r = doc[key]
        slowed = r["shares"].get(doc["slowed"])
        other = [v for k, v in r["shares"].items() if k != doc["slowed"]]
        print(f"{key:>9}: slowed member holds {slowed}, the other {other}, "
              f"decode {r['tokensPerSecond']:.1f} tok/s")
    print(f"{PLAN} plan split by measured speed: {doc['speedup']:.2f}x the tokens/s of the "
          "stale split")


if __name__ == "__main__":
    os.environ.update(THREADS)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    main()
