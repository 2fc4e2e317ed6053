"""Token delay to an HTTP client of the OpenAI-compatible API (``"stream": true``), from
the job runner producing a token to the client holding its chunk, side by side:

A. pushed: the agent's local API (``follow-job``) carries each token to the API server
   (what the control plane does now);
B. polled: the tokens are written to the store as they come (volatile writes) and the
   API server reads the store every 20 ms (what it did before: apijobs.POLL_SECONDS).

Each token's text is the time.monotonic() at which it was produced, so the client
measures the delay in the same process.

    OPENBLAS_NUM_THREADS=1 python bench/stream_push.py [--tokens 200] [--gap 0.02]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from manifests import Job, Pool
from reconciler.apikeys import create_key
from reconciler.controlplane import jobwatch
from reconciler.controlplane.apiserver import ApiServer
from reconciler.home import Home
from reconciler.runtime.jobfeed import Follower, JobFeed, phase_event, token_event
from reconciler.singleton import PidLock
from reconciler.store import Store
from tests.agent_thread import local_api_thread

OLD_POLL_SECONDS = 0.02


def _serve_api(home: Home) -> tuple[int, Callable[[], None]]:
    loop, stop = asyncio.new_event_loop(), asyncio.Event()
    server = ApiServer(home, "127.0.0.1", 0)
    sock = server.bind()
    thread = threading.Thread(target=loop.run_until_complete, args=(server.serve(sock, stop),))
    thread.start()

    def halt() -> None:
        loop.call_soon_threadsafe(stop.set)
        thread.join()
        loop.close()

    return server.port, halt


def _delays(port: int, key: str, tokens: int) -> list[float]:
    body = {"model": "demo", "prompt": "x", "stream": True, "max_tokens": tokens}
    delays: list[float] = []
    headers = {"Authorization": f"Bearer {key}"}
    with (
        httpx.Client(timeout=60) as http,
        http.stream(
            "POST", f"http://127.0.0.1:{port}/v1/completions", json=body, headers=headers
        ) as response,
    ):
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            now = time.monotonic()
            choices = json.loads(line[6:]).get("choices") or [{}]
            stamps = [s for s in str(choices[0].get("text") or "").split(";") if s]
            delays.extend(now - float(s) for s in stamps)
    return delays


def pushed(home: Home, key: str, port: int, tokens: int, gap: float) -> list[float]:
    feed = JobFeed()

    async def produce(name: str) -> None:
        with Store.open(home.root) as store:
            for i in range(tokens):
                await asyncio.sleep(gap)
                feed.publish(name, token_event(i, i, f"{time.monotonic():.6f};", 0.0))
            store.patch_status("Job", name, {"phase": "Succeeded"})
        feed.publish(name, phase_event("Succeeded"))

    def follow(name: str) -> Follower:
        follower = feed.subscribe(
            name, {"event": "snapshot", "phase": None, "tokens": [], "text": ""}
        )
        asyncio.get_running_loop().create_task(produce(name))
        return follower

    with local_api_thread(home, follow, watch_store=True):
        return _delays(port, key, tokens)


def polled(home: Home, key: str, port: int, tokens: int, gap: float) -> list[float]:
    jobwatch.FALLBACK_SECONDS = OLD_POLL_SECONDS  # no agent socket: the store is read

    def produce() -> None:
        with Store.open(home.root) as store:
            while not (
                jobs := [
                    j for j in store.list("Job") if isinstance(j, Job) and j.status.phase is None
                ]
            ):
                time.sleep(0.001)
            name, text = jobs[0].metadata.name, ""
            for i in range(tokens):
                time.sleep(gap)
                text += f"{time.monotonic():.6f};"
                store.patch_volatile("Job", name, {"output": text, "tokenIds": list(range(i + 1))})
            store.patch_status("Job", name, {"phase": "Succeeded"})

    producer = threading.Thread(target=produce)
    producer.start()
    delays = _delays(port, key, tokens)
    producer.join()
    return delays


def _figures(name: str, seconds: list[float]) -> None:
    ms = sorted(s * 1000.0 for s in seconds)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    print(f"{name:58s} median {statistics.median(ms):7.3f} ms   p99 {p99:7.3f} ms   n={len(ms)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--gap", type=float, default=0.02, help="seconds between tokens")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="push-") as tmp:
        home = Home(Path(tmp) / "home")
        with Store.open(home.root) as store:
            store.apply(Pool.model_validate({"metadata": {"name": "p"}, "spec": {}}))
            key, _ = create_key(store, "bench")
        lock = PidLock(home.agent_lock)
        lock.acquire()
        port, halt = _serve_api(home)
        try:
            for _ in range(2):  # interleaved, so both see the same machine load
                _figures("token delay, pushed (local API follow-job)",
                         pushed(home, key, port, args.tokens, args.gap))  # fmt: skip
                _figures(f"token delay, store polled every {OLD_POLL_SECONDS * 1000:.0f} ms (before)",
                         polled(home, key, port, args.tokens, args.gap))  # fmt: skip
        finally:
            halt()
            lock.release()


if __name__ == "__main__":
    main()
