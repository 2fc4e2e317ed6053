"""AgentJobs is what the Job controller sees of the agent: whether a pool's ring has
converged here, starting a job on the pool's runtime through the real job runner,
cancelling it, and when each client's latest job of a pool started."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from manifests import Job, Pool
from reconciler.controllers.jobqueue import CLIENT_ANNOTATION
from reconciler.inference.generate import TokenEvent
from reconciler.runtime import jobrunner
from reconciler.runtime.agentjobs import AgentJobs
from reconciler.runtime.jobrunner import JobRunner
from reconciler.store import Store


class Result:
    finish_reason = "length"
    completion_tokens = 1
    tokens_per_second = None
    members: tuple[Any, ...] = ()

    def status_fields(self) -> dict[str, Any]:
        return {"output": "hi", "token_ids": [7], "completion_tokens": 1}


class HeldJobs:
    """A pool's job service whose jobs run until ``go`` is set."""

    def __init__(self) -> None:
        self.go = asyncio.Event()
        self.running = asyncio.Event()
        self.cache = SimpleNamespace(activations="exact", default_layout=lambda: "exact")

    async def run(self, request: Any, progress: Any, token: Any, plan: Any) -> Result:
        self.running.set()
        await self.go.wait()
        token(TokenEvent(0, 7, "hi", "length", 1.0, 0.0, 0, 1.0, 3))
        return Result()


class FakeRuntime:
    """A pool runtime: a ring of ``members`` at ``epoch``, converged or not."""

    def __init__(self, tmp: Path, members: int, epoch: int, converged: bool = True) -> None:
        slots = [SimpleNamespace(node_id=f"node-{i}", start=i, end=i + 1) for i in range(members)]
        ring = SimpleNamespace(members=slots, epoch=epoch)
        self.gossip, self.jobs = SimpleNamespace(ring=ring), HeldJobs()
        self.ctx = SimpleNamespace(home=tmp)
        self.converged = converged

    def ring_converged(self) -> bool:
        return self.converged


class FakeSupervisor:
    def __init__(self, runtimes: dict[str, FakeRuntime]) -> None:
        self.runtimes = runtimes

    def pool_runtime(self, pool: str) -> FakeRuntime | None:
        return self.runtimes.get(pool)


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setattr(jobrunner, "job_model", lambda *_: tmp_path / "model.gguf")
    monkeypatch.setattr(jobrunner, "prompt_ids", lambda *_: [1, 2])
    opened = Store.open(tmp_path / "home")
    for pool in ("p", "q"):
        opened.apply(Pool.model_validate({"metadata": {"name": pool}, "spec": {}}))
    for name, pool, client in (("j1", "p", "alice"), ("j2", "q", "bob"), ("j3", "p", "carol")):
        metadata = {"name": name, "annotations": {CLIENT_ANNOTATION: client}}
        spec = {"pool": pool, "model": "demo", "prompt": "hi"}
        opened.apply(Job.model_validate({"metadata": metadata, "spec": spec}))
    return opened


def _agent(store: Store, runtimes: dict[str, FakeRuntime]) -> AgentJobs:
    return AgentJobs(store, FakeSupervisor(runtimes), JobRunner(store))  # type: ignore[arg-type]


def _job(store: Store, name: str) -> Job:
    job = store.require("Job", name)
    assert isinstance(job, Job)
    return job


def test_a_ring_counts_as_converged_only_where_its_pool_runs(store: Store, tmp_path: Path) -> None:
    agent = _agent(store, {"p": FakeRuntime(tmp_path, 2, 4), "q": FakeRuntime(tmp_path, 1, 1, False)})
    assert agent.ring_converged("p") is True
    assert agent.ring_converged("q") is False
    assert agent.ring_converged("elsewhere") is False


def test_a_job_of_a_pool_not_running_here_is_refused(store: Store) -> None:
    agent = _agent(store, {})
    with pytest.raises(RuntimeError, match="pool p is not running on this device"):
        agent.start("j1")
    assert agent.run_state("j1") is None


def test_start_runs_the_job_on_its_pools_runtime_to_the_end(store: Store, tmp_path: Path) -> None:
    runtime_p, runtime_q = FakeRuntime(tmp_path, 3, 7), FakeRuntime(tmp_path, 1, 1)
    agent = _agent(store, {"p": runtime_p, "q": runtime_q})

    async def scenario() -> str:
        said = agent.start("j1")
        await runtime_p.jobs.running.wait()
        assert _job(store, "j1").status.phase == "Scheduled"
        runtime_p.jobs.go.set()
        await agent.runner.finished("j1")
        return said

    said = asyncio.run(scenario())
    assert said == "coordinating on 3 member(s), ring epoch 7"
    assert not runtime_q.jobs.running.is_set()
    state = agent.run_state("j1")
    assert state is not None and state.phase == "Succeeded"
    status = _job(store, "j1").status
    assert (status.phase, status.output, status.token_ids) == ("Succeeded", "hi", [7])


def test_cancel_stops_a_running_job_and_says_when_nothing_ran(store: Store, tmp_path: Path) -> None:
    runtime = FakeRuntime(tmp_path, 2, 3)
    agent = _agent(store, {"p": runtime})

    async def scenario() -> tuple[str, str]:
        agent.start("j1")
        await runtime.jobs.running.wait()
        stopped = agent.cancel("j1", "the client went away")
        await agent.runner.finished("j1")
        return stopped, agent.cancel("j3", "never started")

    stopped, idle = asyncio.run(scenario())
    assert stopped == "stopped: the client went away"
    assert idle == "not running here: never started"
    status = _job(store, "j1").status
    assert (status.phase, status.failure_reason) == ("Failed", "Cancelled")
    assert status.failure_message == "cancelled: the client went away"
    assert _job(store, "j3").status.phase is None


def test_last_starts_lists_the_clients_of_that_pool_only(store: Store, tmp_path: Path) -> None:
    runtimes = {"p": FakeRuntime(tmp_path, 1, 1), "q": FakeRuntime(tmp_path, 1, 1)}
    agent = _agent(store, runtimes)

    async def scenario() -> None:
        for name in ("j1", "j2", "j3"):
            agent.start(name)
        for runtime in runtimes.values():
            runtime.jobs.go.set()
        for name in ("j1", "j2", "j3"):
            await agent.runner.finished(name)

    asyncio.run(scenario())
    assert set(agent.last_starts("p")) == {"alice", "carol"}
    assert set(agent.last_starts("q")) == {"bob"}
    assert agent.last_starts("r") == {}
