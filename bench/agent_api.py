"""The agent's local API: request round trip and token push delay, side by side with the
alternatives it was chosen over.

A. Round trip of one request on a fresh connection (what one CLI command does): the
   local API (asyncio streams, JSON lines; client: stdlib socket) vs FastAPI/uvicorn on
   a Unix socket with an httpx client.
B. Delay from the coordinator producing a token (time.monotonic() in the event) to the
   CLI holding it: pushed over the local API vs written to the store and polled every
   50 ms (what `mesh inference` did before).

    OPENBLAS_NUM_THREADS=1 python bench/agent_api.py [--requests 300] [--tokens 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from manifests import Job, Pool
from meshctl.agentclient import AgentClient
from reconciler.localapi import LocalApi
from reconciler.runtime.jobfeed import Follower, JobFeed, phase_event, token_event
from reconciler.store import Store

TOKEN_GAP = 0.02  # seconds between tokens (about the demo model's pace on two members)
POLL_SECONDS = 0.05


Main = Callable[[asyncio.Event, threading.Event], Coroutine[Any, Any, None]]


def _in_thread(main: Main) -> Callable[[], None]:
    """Run ``main(stop, ready)`` on a loop in a thread; returns the function that stops it."""
    loop, ready = asyncio.new_event_loop(), threading.Event()
    stop = asyncio.Event()
    thread = threading.Thread(target=loop.run_until_complete, args=(main(stop, ready),))
    thread.start()
    ready.wait()

    def halt() -> None:
        loop.call_soon_threadsafe(stop.set)
        thread.join()
        loop.close()

    return halt


def _figures(name: str, seconds: list[float]) -> None:
    ms = sorted(s * 1000.0 for s in seconds)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    print(f"{name:48s} median {statistics.median(ms):7.3f} ms   p99 {p99:7.3f} ms   n={len(ms)}")


def round_trips(root: Path, count: int) -> None:
    path = root / "agent.sock"
    feed = JobFeed()

    async def local(stop: asyncio.Event, ready: threading.Event) -> None:
        api = LocalApi(path, lambda name: feed.subscribe(name, {}))
        task = asyncio.create_task(api.serve(stop))
        await api.ready.wait()
        ready.set()
        await task

    halt = _in_thread(local)
    client, seconds = AgentClient(path), []
    for _ in range(count):
        start = time.perf_counter()
        client.ping()
        seconds.append(time.perf_counter() - start)
    halt()
    _figures("ping, local API (asyncio streams, stdlib)", seconds)
    _uvicorn_round_trips(root / "uvicorn.sock", count)


def _uvicorn_round_trips(path: Path, count: int) -> None:
    import httpx
    import uvicorn
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/ping")
    def ping() -> dict[str, bool]:
        return {"ok": True}

    server = uvicorn.Server(uvicorn.Config(app, uds=str(path), log_level="error"))

    async def serve(stop: asyncio.Event, ready: threading.Event) -> None:
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        ready.set()
        await stop.wait()
        server.should_exit = True
        await task

    halt = _in_thread(serve)
    seconds = []
    close = {"Connection": "close"}  # a fresh connection per request, as one command makes
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(path)), headers=close) as http:
        for _ in range(count):
            start = time.perf_counter()
            http.get("http://agent/ping").raise_for_status()
            seconds.append(time.perf_counter() - start)
    halt()
    _figures("ping, FastAPI/uvicorn on a UDS, httpx", seconds)


def pushed_delays(root: Path, tokens: int) -> None:
    path, feed = root / "push.sock", JobFeed()

    def follow(name: str) -> Follower:
        follower = feed.subscribe(name, {"event": "snapshot", "phase": None, "text": ""})
        asyncio.get_running_loop().create_task(produce(name))
        return follower

    async def produce(name: str) -> None:
        for i in range(tokens):
            await asyncio.sleep(TOKEN_GAP)
            feed.publish(name, token_event(i, i, "x", time.monotonic()))
        feed.publish(name, phase_event("Succeeded"))

    async def serve(stop: asyncio.Event, ready: threading.Event) -> None:
        api = LocalApi(path, follow)
        task = asyncio.create_task(api.serve(stop))
        await api.ready.wait()
        ready.set()
        await task

    halt = _in_thread(serve)
    delays = [time.monotonic() - e["at"] for e in AgentClient(path).follow_job("j", 5.0)
              if e is not None and e["event"] == "token"]  # fmt: skip
    halt()
    _figures("token delay, pushed over the local API", delays)


def polled_delays(root: Path, tokens: int) -> None:
    """As before the local API: the runner writes the tokens so far to the store at most
    every 50 ms (FLUSH_SECONDS), the CLI reads the store every 50 ms."""
    with Store.open(root) as store:
        store.apply(Pool.model_validate({"metadata": {"name": "p"}, "spec": {}}))
        spec = {"pool": "p", "model": "demo", "prompt": "hi"}
        store.apply(Job.model_validate({"metadata": {"name": "j"}, "spec": spec}))

    def produce() -> None:
        produced: list[float] = []
        flushed = 0.0
        with Store.open(root) as writer:
            for i in range(tokens):
                time.sleep(TOKEN_GAP)
                produced.append(time.monotonic())
                if produced[-1] - flushed >= POLL_SECONDS or i == tokens - 1:
                    flushed = produced[-1]
                    writer.patch_status("Job", "j", {"output": json.dumps(produced)})
            writer.patch_status("Job", "j", {"phase": "Succeeded"})

    producer = threading.Thread(target=produce)
    producer.start()
    delays: list[float] = []
    with Store.open(root) as store:
        while True:
            status = store.require("Job", "j").status.model_dump(by_alias=True)
            now = time.monotonic()
            produced = json.loads(status.get("output") or "[]")
            delays.extend(now - at for at in produced[len(delays) :])
            if status.get("phase") == "Succeeded":
                break
            time.sleep(POLL_SECONDS)
    producer.join()
    _figures("token delay, store flushed + polled every 50 ms", delays)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--tokens", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="api-") as tmp:
        round_trips(Path(tmp), args.requests)
        pushed_delays(Path(tmp), args.tokens)
        polled_delays(Path(tmp), args.tokens)


if __name__ == "__main__":
    main()
