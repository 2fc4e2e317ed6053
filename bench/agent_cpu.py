"""CPU of a real agent: idle with a converged one-member pool, then while `mesh inference`
streams a job (agent and CLI processes counted apart).

Beacons stay on loopback (TTL 0) on a random port. To compare two trees, run it in
each, side by side, from the tree's own folder (`python -m` puts the current folder
first on the path of the agent and the CLI it starts):

    cd TREE && OPENBLAS_NUM_THREADS=1 PYTHONPATH=. python /path/to/bench/agent_cpu.py \
        [--seconds 60] [--tokens 200]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from manifests import Job, Pool
from reconciler.store import Store

POOL = "apiVersion: meshnet.dev/v1alpha1\nkind: Pool\nmetadata: {name: bench}\nspec: {admission: token}\n"  # fmt: skip
TICKS = os.sysconf("SC_CLK_TCK")
PROMPT = "Once upon a time, in a small village by the sea,"  # the demo model goes on and on


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def _cli(env: dict[str, str], *args: str, tool: str = "meshctl") -> subprocess.CompletedProcess[str]:  # fmt: skip
    module = "reconciler.entry" if tool == "meshctl" else "reconciler.entry.mesh"
    return subprocess.run([sys.executable, "-m", module, *args], env=env, check=True,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def _ready(root: Path) -> bool:
    with Store.open(root) as store:
        pool = store.get("Pool", "bench")
    ready = pool.status.condition("Ready") if isinstance(pool, Pool) else None
    return ready is not None and ready.status == "True"


def _pushed_delays(root: Path, tokens: int) -> None:
    """A job followed over the agent's socket: how long after the coordinator produced
    each token (the event's ``at``, the agent's monotonic clock) this process holds it."""
    try:
        from meshctl.agentclient import AgentClient
    except ImportError:  # a tree without the local API
        return
    from reconciler.home import Home

    spec = {"pool": "bench", "model": "demo", "prompt": PROMPT, "maxTokens": tokens}
    with Store.open(root) as store:
        store.apply(Job.model_validate({"metadata": {"name": "pushed"}, "spec": spec}))
    delays: list[float] = []
    for event in AgentClient(Home(root).agent_socket).follow_job("pushed", 60.0):
        if event is not None and event["event"] == "token":
            delays.append((time.monotonic() - event["at"]) * 1000.0)
    first, delays = delays[0], sorted(delays)
    p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))]
    print(f"{len(delays)} tokens pushed over agent.sock: produced -> here median "
          f"{statistics.median(delays):.3f} ms, p99 {p99:.3f} ms, first token {first:.3f} ms")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--tokens", type=int, default=48)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cpu-") as tmp:
        root = Path(tmp) / "home"
        env = {**os.environ, "MESHNET_HOME": str(root), "MESHNET_BEACON_INTERFACE": "127.0.0.1",
               "MESHNET_BEACON_PORT": str(45000 + secrets.randbelow(5000))}  # fmt: skip
        _cli(env, "init", "--network-id", "bench", "--name", "dev1")
        (Path(tmp) / "pool.yaml").write_text(POOL)
        _cli(env, "apply", "-f", str(Path(tmp) / "pool.yaml"))
        log = (Path(tmp) / "agent.out").open("wb")
        agent = subprocess.Popen([sys.executable, "-m", "reconciler.entry", "agent"], env=env,
                                 stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while not _ready(root):
                if time.monotonic() > deadline or agent.poll() is not None:
                    raise SystemExit("the pool did not become Ready")
                time.sleep(0.5)
            time.sleep(5.0)  # let the ring converge and start-up work settle
            before = cpu_seconds(agent.pid)
            time.sleep(args.seconds)
            idle = (cpu_seconds(agent.pid) - before) / args.seconds
            print(
                f"idle agent, one-member pool: {idle * 100:.2f}% of a core over {args.seconds:.0f} s"
            )
            before = cpu_seconds(agent.pid)
            with Store.open(root) as store:
                revision = store.revision()
            started = time.monotonic()
            command = [sys.executable, "-m", "reconciler.entry.mesh", "inference", "--prompt", PROMPT,
                       "--max-tokens", str(args.tokens), "-o", "json"]  # fmt: skip
            cli = subprocess.Popen(command, env=env, stdout=subprocess.PIPE)
            assert cli.stdout is not None
            doc = json.loads(cli.stdout.read())
            usage = os.wait4(cli.pid, 0)[2]
            wall = time.monotonic() - started
            agent_cpu = cpu_seconds(agent.pid) - before
            with Store.open(root) as store:
                revisions = store.revision() - revision
            print(f"one job of {doc['completionTokens']} tokens: {wall:.2f} s wall, agent {agent_cpu:.2f} s CPU, "
                  f"CLI {usage.ru_utime + usage.ru_stime:.2f} s CPU, {revisions} store revisions")  # fmt: skip
            _pushed_delays(root, args.tokens)
        finally:
            agent.send_signal(signal.SIGTERM)
            agent.wait(30)
            log.close()


if __name__ == "__main__":
    main()
