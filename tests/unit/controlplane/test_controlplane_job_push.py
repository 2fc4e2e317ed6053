"""The control plane's job streams are pushed by the agent: a token the job runner
produces reaches the HTTP client (job events, the OpenAI API) before the store holds
it; without an agent the store is read (jobwatch.py)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx

from manifests import Job
from reconciler.apikeys import create_key
from reconciler.controlplane.jobwatch import JobNews
from reconciler.runtime.jobfeed import Follower, JobFeed, phase_event, token_event
from reconciler.singleton import PidLock
from reconciler.store import Store
from tests.agent_thread import local_api_thread

JOB: dict[str, Any] = {
    "apiVersion": "meshnet.dev/v1alpha1",
    "kind": "Job",
    "metadata": {"name": "hello"},
    "spec": {"pool": "lab", "prompt": "Hi", "maxTokens": 3},
}
SNAPSHOT: dict[str, Any] = {"event": "snapshot", "phase": None, "tokens": [], "text": ""}


class PushingRunner:
    """A job runner that publishes what the test tells it to, on the local API's loop."""

    def __init__(self) -> None:
        self.feed = JobFeed()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.followed = threading.Event()

    def follow(self, name: str) -> Follower:
        self.loop = asyncio.get_running_loop()
        follower = self.feed.subscribe(name, dict(SNAPSHOT))
        self.followed.set()
        return follower

    def publish(self, name: str, event: dict[str, Any]) -> None:
        assert self.followed.wait(30) and self.loop is not None
        self.loop.call_soon_threadsafe(self.feed.publish, name, event)


def _sse(lines: Iterator[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    kind = ""
    for line in lines:
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            yield kind, json.loads(line[6:])


def _stored_tokens(store: Store) -> list[int]:
    job = store.require("Job", "hello")
    assert isinstance(job, Job)
    return list(job.status.token_ids)


def test_runner_tokens_reach_the_event_stream_before_the_store(
    kit: Any, member: httpx.Client
) -> None:
    assert member.post("/v1/jobs", json=JOB).status_code == 201
    runner = PushingRunner()
    script: list[dict[str, Any]] = [
        phase_event("Running"),
        token_event(0, 5, "a", 0.0),
        token_event(1, 6, "b", 0.0),
    ]
    events: list[tuple[str, dict[str, Any]]] = []
    in_store: list[list[int]] = []
    with (
        local_api_thread(kit.home, runner.follow, watch_store=True),
        Store.open(kit.home.root) as store,
        member.stream("GET", "/v1/jobs/hello/events", timeout=10) as response,
    ):
        for kind, data in _sse(response.iter_lines()):
            events.append((kind, data))
            if kind == "token":
                in_store.append(_stored_tokens(store))
            if script:
                runner.publish("hello", script.pop(0))
            elif kind == "token" and data["index"] == 1:  # the runner's end: store, then push
                final = {"phase": "Succeeded", "tokenIds": [5, 6, 7], "output": "ab!"}
                store.patch_status("Job", "hello", final)
                runner.publish("hello", phase_event("Succeeded"))
    assert [k for k, _ in events] == [
        "status",
        "status",
        "token",
        "token",
        "status",
        "token",
        "end",
    ]
    assert [d["phase"] for k, d in events if k == "status"] == [None, "Running", "Succeeded"]
    assert [(d["id"], d["output"]) for k, d in events if k == "token"] == [
        (5, "a"),
        (6, "ab"),
        (7, "ab!"),
    ]
    assert in_store[:2] == [[], []]  # the pushed tokens were not in the store yet
    assert events[-1][1] == {"phase": "Succeeded", "output": "ab!"}


def test_openai_stream_deltas_are_the_pushed_tokens(kit: Any, plane: Any) -> None:
    with Store.open(kit.home.root) as store:
        key, _ = create_key(store, "tester")
    runner = PushingRunner()
    body = {"model": "demo", "prompt": "Once", "stream": True, "max_tokens": 3}
    lock = PidLock(kit.home.agent_lock)
    lock.acquire()
    texts: list[str] = []
    try:
        with (
            local_api_thread(kit.home, runner.follow, watch_store=True),
            Store.open(kit.home.root) as store,
            plane.client(None) as api,
            api.stream(
                "POST", "/v1/completions", json=body, headers={"Authorization": f"Bearer {key}"}
            ) as response,  # fmt: skip
        ):
            lines = (line for line in response.iter_lines() if line.startswith("data: "))
            assert runner.followed.wait(30)  # the control plane follows the job
            (job,) = store.list("Job")
            name = job.metadata.name
            for piece, index in ((" upon", 0), (" a", 1)):
                runner.publish(name, token_event(index, index, piece, 0.0))
                texts.append(json.loads(next(lines)[6:])["choices"][0]["text"])
                assert _job_output(store, name) == ""  # pushed, not read from the store
            store.patch_status("Job", name, {"phase": "Succeeded", "output": " upon a time",
                                             "tokenIds": [0, 1, 2], "finishReason": "length"})  # fmt: skip
            runner.publish(name, phase_event("Succeeded"))
            rest = [line[6:] for line in lines]
    finally:
        lock.release()
    assert texts == [" upon", " a"]
    assert json.loads(rest[0])["choices"][0]["text"] == " time"  # the final status adds it
    assert rest[-1] == "[DONE]"


def _job_output(store: Store, name: str) -> str:
    job = store.require("Job", name)
    assert isinstance(job, Job)
    return job.status.output or ""


def test_without_an_agent_an_ended_job_is_read_from_the_store(
    kit: Any, member: httpx.Client
) -> None:
    assert member.post("/v1/jobs", json=JOB).status_code == 201
    with Store.open(kit.home.root) as store:
        store.patch_status("Job", "hello", {"phase": "Failed", "output": "x", "tokenIds": [3]})
    assert not kit.home.agent_socket.exists()
    with member.stream("GET", "/v1/jobs/hello/events", timeout=10) as response:
        events = list(_sse(response.iter_lines()))
    assert [k for k, _ in events] == ["status", "token", "end"]
    assert events[-1][1] == {"phase": "Failed", "output": "x"}


def test_news_takes_pushed_tokens_in_order_and_the_stores_final_text() -> None:
    news = JobNews(None)
    assert not news.pushed(token_event(1, 9, "skipped: not the next index", 0.0))
    assert not news.pushed(token_event(0, 4, "He", 0.0))
    assert not news.pushed({"event": "phase", "phase": "Running"})
    assert not news.pushed({"event": "phase", "phase": "Scheduled"})  # never backwards
    assert (news.token_ids, news.text, news.phase) == ([4], "He", "Running")
    assert news.pushed({"event": "phase", "phase": "Succeeded"})  # read the final status
    assert news.pushed({"event": "status", "phase": "Pending", "resourceVersion": "3"})
    assert news.pushed({"event": "deleted", "name": "j"})


def test_the_dashboard_streams_pushed_tokens_and_store_changes(
    kit: Any, member: httpx.Client
) -> None:
    assert member.post("/v1/jobs", json=JOB).status_code == 201
    runner = PushingRunner()
    outputs: list[tuple[str, str]] = []
    with (
        local_api_thread(kit.home, runner.follow, watch_store=True),
        Store.open(kit.home.root) as store,
        member.stream("GET", "/v1/dashboard/stream", timeout=10) as response,
    ):
        for kind, data in _sse(response.iter_lines()):
            assert kind == "snapshot"
            (job,) = data["pools"][0]["jobs"]
            outputs.append((job["phase"], job["output"]))
            if len(outputs) == 1:  # the stream follows the job's tokens: push one
                runner.publish("hello", token_event(0, 5, "Hel", 0.0))
            elif len(outputs) == 2:  # a store write (another process's): pushed too
                store.patch_status("Job", "hello", {"phase": "Running"})
            else:
                break
    assert outputs == [("Pending", ""), ("Pending", "Hel"), ("Running", "Hel")]
