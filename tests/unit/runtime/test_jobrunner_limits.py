"""The agent refuses a Job whose prompt + maxTokens is beyond the model's context before
any member is offered it or loads anything; the Job is then Failed and Stalled."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

from manifests import Job
from reconciler.executor import Executor
from reconciler.gossip.ring import Ring, RingSlot, ring_hash
from reconciler.handlers import build_handlers
from reconciler.home import Home
from reconciler.jobs.prompts import job_prompt_problem
from reconciler.jobs.service import JobService
from reconciler.runtime.jobrunner import JobRunner, RunState
from reconciler.store import Store

MODEL = Path(__file__).resolve().parents[2] / "fixtures" / "models" / "tiny-llama.gguf"
LONG = "hello world " * 30  # about 180 tokens; the model's context is 256


def _job(prompt: str, max_tokens: int, model: str = str(MODEL)) -> Job:
    spec = {"pool": "p", "model": model, "prompt": prompt, "maxTokens": max_tokens}
    return Job.model_validate({"metadata": {"name": "long"}, "spec": spec})


def _ring() -> Ring:
    slots = (
        RingSlot("a", "a", "127.0.0.1", 0, 0, 4096),
        RingSlot("b", "b", "127.0.0.1", 1, 4096, 8192),
    )
    return Ring("p", 3, ring_hash("p", 8192, slots), 8192, slots)


class NoStart:
    """JobSupport whose start must never be called."""

    def __init__(self) -> None:
        self.started: list[str] = []

    def run_state(self, name: str) -> RunState | None:
        return None

    def ring_converged(self, pool: str) -> bool:
        return True

    def start(self, name: str) -> str:
        self.started.append(name)
        return "started"

    def cancel(self, name: str, reason: str) -> str:
        return f"not running here: {reason}"

    def last_starts(self, pool: str) -> dict[str, float]:
        return {}  # no job of the pool started here


def test_job_prompt_problem_names_the_limits_and_reads_no_weights() -> None:
    assert job_prompt_problem(_job("hello", 8)) is None
    problem = job_prompt_problem(_job(LONG, 200), world_size=2)
    assert problem is not None and "context of 256" in problem and "maxTokens 200" in problem
    assert job_prompt_problem(_job(LONG, 200, model="/no/such/model.gguf")) is None


def test_the_agent_refuses_a_too_long_job_before_offering_it(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "home")
    store.apply(_job(LONG, 200))
    offered: list[str] = []
    service = JobService(
        "a",
        send_control=lambda node, payload: offered.append(node),
        tensor_transport_factory=lambda: None,  # type: ignore[arg-type, return-value]
        model_resolver=Path,
    )
    runtime = SimpleNamespace(
        gossip=SimpleNamespace(ring=_ring()),
        jobs=service,
        ctx=SimpleNamespace(home=Home(tmp_path / "home")),
    )

    async def main() -> None:
        runner = JobRunner(store)
        job = store.require("Job", "long")
        assert isinstance(job, Job)
        runner.start(job, runtime)
        await next(t for t in asyncio.all_tasks() if t.get_name() == "job-long")

    asyncio.run(main())
    job = store.require("Job", "long")
    assert isinstance(job, Job)
    assert job.status.phase == "Failed" and job.status.failure_reason == "PromptTooLong"
    assert "context of 256" in (job.status.failure_message or "")
    assert offered == [] and service.cache.loads == 0 and not service.runs
    jobs = NoStart()
    Executor(store, build_handlers(Home(tmp_path / "home"), store, jobs)).reconcile_all(0.0)
    stalled = store.require("Job", "long").status.condition("Stalled")
    assert stalled is not None and stalled.reason == "PromptTooLong"
    assert jobs.started == []
