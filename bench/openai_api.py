"""The OpenAI-compatible API, measured on one device on loopback (demo model):

- latency to the first token: through the API (streamed chat, client side, to the first
  content chunk; and a 1-token request end to end) beside `mesh inference` (the same
  prompt with --max-tokens 1, process start to exit: it includes Python's start-up,
  shown apart as `mesh version`'s wall time); medians of several rounds, interleaved;
- requests per second for `GET /v1/models` with 50 concurrent clients (httpx, bounded
  count), with latency percentiles, beside the same server's unauthenticated `/healthz`
  (the floor of uvicorn, the agent's event loop and the client on this machine).

    python bench/openai_api.py [--rounds 5] [--requests 2000]

Figures only (no assertions). Traffic stays on 127.0.0.1; beacons on loopback, TTL 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "e2e"))

from agents import WATCHED, wait_for

PROMPT = "What is the capital of France?"
CONCURRENCY = 50


class Device:
    """One device: a home, an agent serving the API on a free loopback port."""

    def __init__(self, root: Path) -> None:
        self.env = {**os.environ, "MESHNET_HOME": str(root), "MESHNET_BEACON_INTERFACE": "127.0.0.1",
                    "MESHNET_BEACON_PORT": str(45000 + secrets.randbelow(5000)),
                    "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}  # fmt: skip
        self.root = root
        self.cli("meshctl", "init", "--name", "bench")
        self.cli("mesh", "pool-create", "--name", "bench")
        log = (root / "agent.out").open("ab")
        self.agent = subprocess.Popen([sys.executable, "-m", "reconciler.entry", "agent", "--api-port", "0"],
                                      env=self.env, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        port = root / "api.port"
        self.port = int(
            wait_for(lambda: port.read_text().strip() if port.exists() else None, 60, "api.port")
        )
        self.key = json.loads(self.cli("meshctl", "apikey", "create", "bench", "-o", "json"))["key"]
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def cli(self, tool: str, *args: str) -> str:
        module = "reconciler.entry" if tool == "meshctl" else "reconciler.entry.mesh"
        done = subprocess.run([sys.executable, "-m", module, *args], env=self.env, check=True,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        return done.stdout

    def stop(self) -> None:
        self.agent.terminate()
        self.agent.wait(30)


def job_ttft(device: Device, name: str) -> float:
    """The agent's own first-token latency of a job (seconds, from its status)."""
    from manifests import Job
    from reconciler.store import Store

    with Store.open(device.root) as store:
        job = store.require("Job", name)
    assert isinstance(job, Job)
    return float(job.status.time_to_first_token_ms or 0.0) / 1000.0


def api_first_chunk(device: Device) -> tuple[float, str]:
    """(seconds from sending a streamed chat request to its first content chunk, job)."""
    body = {"model": "demo", "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 8,
            "temperature": 0, "stream": True}  # fmt: skip
    headers = {"Authorization": f"Bearer {device.key}"}
    start = time.perf_counter()
    first, name = None, ""
    with httpx.stream("POST", f"{device.url}/chat/completions", json=body, headers=headers,
                      timeout=300) as response:  # fmt: skip
        for line in response.iter_lines():
            chunk = json.loads(line[6:]) if line.startswith("data: {") else {}
            name = name or str(chunk.get("id", "")).removeprefix("chatcmpl-")
            if (
                first is None
                and chunk.get("choices")
                and chunk["choices"][0]["delta"].get("content")
            ):
                first = time.perf_counter() - start
    assert first is not None, "no content chunk"
    return first, name


def api_one_token(device: Device) -> float:
    body = {"model": "demo", "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 1,
            "temperature": 0}  # fmt: skip
    start = time.perf_counter()
    response = httpx.post(f"{device.url}/chat/completions", json=body, timeout=300,
                          headers={"Authorization": f"Bearer {device.key}"})  # fmt: skip
    response.raise_for_status()
    return time.perf_counter() - start


def cli_one_token(device: Device) -> tuple[float, float]:
    """(wall seconds of `mesh inference --max-tokens 1`, the job's own first-token s)."""
    start = time.perf_counter()
    out = device.cli(
        "mesh", "inference", "--prompt", PROMPT, "--chat", "--max-tokens", "1", "-o", "json"
    )
    return time.perf_counter() - start, float(json.loads(out)["timeToFirstTokenMs"]) / 1000.0


def cli_startup(device: Device) -> float:
    start = time.perf_counter()
    device.cli("mesh", "version")
    return time.perf_counter() - start


async def get_load(device: Device, total: int, path: str) -> dict[str, float]:
    """``total`` GETs of ``path`` from 50 concurrent clients (with the API key)."""
    headers = {"Authorization": f"Bearer {device.key}"}
    latencies: list[float] = []
    remaining = iter(range(total))
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{device.port}", headers=headers, limits=limits,
                                 timeout=60) as client:  # fmt: skip

        async def worker() -> None:
            for _ in remaining:
                start = time.perf_counter()
                response = await client.get(path)
                response.raise_for_status()
                latencies.append(time.perf_counter() - start)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        wall = time.perf_counter() - start
    latencies.sort()
    return {"requests": float(len(latencies)), "seconds": wall, "rps": len(latencies) / wall,
            "p50_ms": 1000 * latencies[len(latencies) // 2],
            "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="meshnet-api-") as tmp:
        device = Device(Path(tmp))
        WATCHED[:] = [Path(tmp)]  # wait_for wakes on what the agents write there
        try:
            api_first_chunk(device), cli_one_token(device)  # warm-up: model loaded, caches
            names = ["api_stream_first_chunk", "  its job, agent side", "api_1_token",
                     "mesh_inference_1_token", "  its job, agent side ", "mesh_version"]  # fmt: skip
            figures: dict[str, list[float]] = {name: [] for name in names}
            for _ in range(args.rounds):  # interleaved, so load changes hit both sides
                first, job = api_first_chunk(device)
                cli_wall, cli_job = cli_one_token(device)
                rows = [first, job_ttft(device, job), api_one_token(device), cli_wall, cli_job,
                        cli_startup(device)]  # fmt: skip
                for name, value in zip(names, rows, strict=True):
                    figures[name].append(value)
            print(f"latency to the first token, demo model, median of {args.rounds} (s):")
            for name, values in figures.items():
                print(f"  {name:24s} median {statistics.median(values):6.3f}  "
                      f"min {min(values):6.3f}  max {max(values):6.3f}")  # fmt: skip
            for path in (
                "/v1/models",
                "/healthz",
                "/v1/models",
            ):  # /healthz: the same server's floor
                load = asyncio.run(get_load(device, args.requests, path))
                rps, p50, p99 = load["rps"], load["p50_ms"], load["p99_ms"]
                print(f"GET {path}, {CONCURRENCY} concurrent clients, {int(load['requests'])} requests: "
                      f"{rps:.0f} req/s (p50 {p50:.1f} ms, p99 {p99:.1f} ms)")  # fmt: skip
        finally:
            device.stop()


if __name__ == "__main__":
    main()
