"""The job runner pushes a job's phases and tokens to its followers, in order, and writes
tokens to the store less often while someone follows them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from manifests import Job, Pool
from reconciler.inference.generate import TokenEvent
from reconciler.runtime import jobrunner
from reconciler.runtime.jobfeed import Event, Follower
from reconciler.runtime.jobrunner import JobRunner
from reconciler.store import Store

TEXTS = ["Hel", "lo", ",", " wor", "ld"]


@dataclass
class Result:
    finish_reason: str = "length"
    completion_tokens: int = len(TEXTS)
    tokens_per_second: float = 10.0
    members: tuple[Any, ...] = ()

    def status_fields(self) -> dict[str, Any]:
        return {"completion_tokens": self.completion_tokens, "output": "".join(TEXTS)}


class FakeJobs:
    """The pool's job service: waits for ``go``, then produces TEXTS as tokens."""

    def __init__(self) -> None:
        self.go = asyncio.Event()
        self.cache = SimpleNamespace(activations="exact", default_layout=lambda: "exact")

    async def run(self, request: Any, progress: Any, token: Any, plan: Any) -> Result:
        progress("node-a", 1.0)
        await self.go.wait()
        for i, text in enumerate(TEXTS):
            last = i == len(TEXTS) - 1
            token(TokenEvent(i, 100 + i, text, "length" if last else None, 1.0, 0.0, 0, 1.0, 3))
            await asyncio.sleep(0)  # each token reaches the runner in a loop callback of its own
        return Result()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        self.now += 0.1  # every token comes 0.1 s after the one before
        return self.now


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setattr(jobrunner, "job_model", lambda *_: tmp_path / "model.gguf")
    monkeypatch.setattr(jobrunner, "prompt_ids", lambda *_: [1, 2, 3])
    opened = Store.open(tmp_path / "home")
    opened.apply(Pool.model_validate({"metadata": {"name": "p"}, "spec": {}}))
    for name in ("j", "k"):
        job = {"metadata": {"name": name}, "spec": {"pool": "p", "model": "demo", "prompt": "hi"}}
        opened.apply(Job.model_validate(job))
    return opened


def _runtime(jobs: FakeJobs, tmp_path: Path) -> Any:
    ring = SimpleNamespace(members=[SimpleNamespace(node_id="node-a", start=0, end=8)])
    return SimpleNamespace(ctx=SimpleNamespace(home=tmp_path), jobs=jobs,
                           gossip=SimpleNamespace(ring=ring))  # fmt: skip


async def _drain(follower: Follower) -> list[Event]:
    events = [await follower.next()]
    while events[-1].get("phase") not in ("Succeeded", "Failed"):
        events.append(await follower.next())
    return events


async def _run_job(
    store: Store, tmp_path: Path, follow: bool, name: str = "j"
) -> tuple[list[Event], int]:
    runner, jobs = JobRunner(store, clock=FakeClock()), FakeJobs()
    follower = runner.follow(name) if follow else None
    job = store.require("Job", name)
    assert isinstance(job, Job)
    before = store.revision()
    runner.start(job, _runtime(jobs, tmp_path))
    jobs.go.set()
    events = await _drain(follower) if follower else []
    await runner.finished(name)
    return events, store.revision() - before


def test_a_follower_gets_every_token_in_order_then_the_end(store: Store, tmp_path: Path) -> None:
    events, _ = asyncio.run(_run_job(store, tmp_path, follow=True))
    assert events[0] == {"event": "snapshot", "phase": None, "tokens": [], "text": ""}
    kinds = [e["event"] if e["event"] != "phase" else e["phase"] for e in events[1:]]
    assert kinds == ["Scheduled", "progress", "Running", *["token"] * 5, "Succeeded"]
    tokens = [e for e in events if e["event"] == "token"]
    assert [e["id"] for e in tokens] == [100, 101, 102, 103, 104]
    assert "".join(e["text"] for e in tokens) == "Hello, world"
    assert [e["index"] for e in tokens] == list(range(5))
    final = store.require("Job", "j")
    assert isinstance(final, Job)
    assert final.status.phase == "Succeeded"  # in the store before the end is pushed


def test_a_late_follower_starts_from_a_snapshot(store: Store, tmp_path: Path) -> None:
    async def scenario() -> Event:
        runner, jobs = JobRunner(store, clock=FakeClock()), FakeJobs()
        job = store.require("Job", "j")
        assert isinstance(job, Job)
        runner.start(job, _runtime(jobs, tmp_path))
        jobs.go.set()
        await runner.finished("j")
        return await runner.follow("j").next()

    snapshot = asyncio.run(scenario())
    assert snapshot["phase"] == "Succeeded"
    assert (snapshot["tokens"], snapshot["text"]) == ([100, 101, 102, 103, 104], "Hello, world")


def test_streamed_tokens_bump_no_store_revision(store: Store, tmp_path: Path) -> None:
    _, unfollowed = asyncio.run(_run_job(store, tmp_path, follow=False))
    _, followed = asyncio.run(_run_job(store, tmp_path, follow=True, name="k"))
    # tokens 0.1 s apart: every one is written when nobody follows (FLUSH_SECONDS 0.05),
    # only the first and the last while a follower gets them pushed; either way they
    # are volatile and wake no controller: only the phases move the revision
    assert unfollowed == followed
    final = store.require("Job", "j")
    assert isinstance(final, Job)
    assert final.status.output == "Hello, world"
