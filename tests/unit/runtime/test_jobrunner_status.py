"""What the job runner writes to a Job's status reads back as typed fields: the load
progress of every member (not only the last to report), the prompt's token ids, the
finish reason and the per-member figures."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from manifests import Job, Pool
from reconciler.inference.generate import TokenEvent
from reconciler.runtime import jobrunner
from reconciler.runtime.jobrunner import JobRunner
from reconciler.store import Store


class Result:
    finish_reason = "eos"
    completion_tokens = 1
    tokens_per_second = None
    members: tuple[Any, ...] = ()

    def status_fields(self) -> dict[str, Any]:
        member = {"node_id": "node-b", "columns": [4, 8], "compute_ms": 2.5, "bytes_sent": 64}
        return {"output": "ok", "token_ids": [9], "completion_tokens": 1, "members": [member]}


class TwoMembersLoad:
    """The pool's job service: node-a and node-b report their loading, then one token."""

    def __init__(self, result: Any = None) -> None:
        self.cache = SimpleNamespace(activations="exact", default_layout=lambda: "exact")
        self.result = result or Result()

    async def run(self, request: Any, progress: Any, token: Any, plan: Any) -> Any:
        progress("node-a", 0.5)
        progress("node-b", 0.25)
        progress("node-a", 1.0)
        token(TokenEvent(0, 9, "ok", "eos", 1.0, 0.0, 0, 1.0, 3))
        return self.result


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setattr(jobrunner, "job_model", lambda *_: tmp_path / "model.gguf")
    monkeypatch.setattr(jobrunner, "prompt_ids", lambda *_: [1, 2, 3])
    opened = Store.open(tmp_path / "home")
    opened.apply(Pool.model_validate({"metadata": {"name": "p"}, "spec": {}}))
    job = {"metadata": {"name": "j"}, "spec": {"pool": "p", "model": "demo", "prompt": "hi"}}
    opened.apply(Job.model_validate(job))
    return opened


RING = SimpleNamespace(members=[SimpleNamespace(node_id="node-a", start=0, end=4),
                                SimpleNamespace(node_id="node-b", start=4, end=8)])  # fmt: skip


def _run(store: Store, tmp_path: Path, ring: Any = RING, result: Any = None) -> Job:
    runtime = SimpleNamespace(ctx=SimpleNamespace(home=tmp_path), jobs=TwoMembersLoad(result),
                              gossip=SimpleNamespace(ring=ring))  # fmt: skip

    async def main() -> None:
        runner = JobRunner(store)
        job = store.require("Job", "j")
        assert isinstance(job, Job)
        runner.start(job, runtime)
        await runner.finished("j")

    asyncio.run(main())
    job = store.require("Job", "j")
    assert isinstance(job, Job)
    return job


def test_load_progress_keeps_every_member(store: Store, tmp_path: Path) -> None:
    status = _run(store, tmp_path).status
    assert status.load_progress == {"node-a": 1.0, "node-b": 0.25}


def test_a_finished_job_reads_back_typed(store: Store, tmp_path: Path) -> None:
    status = _run(store, tmp_path).status
    assert status.phase == "Succeeded" and status.finish_reason == "eos"
    assert status.prompt_token_ids == [1, 2, 3] and status.prompt_tokens == 3
    assert (status.output, status.token_ids) == ("ok", [9])
    [member] = status.members
    assert (member.node_id, member.columns, member.compute_ms, member.bytes_sent) == (
        "node-b", [4, 8], 2.5, 64
    )  # fmt: skip
    assert status.failure_reason is None and status.model_extra == {}


def test_a_job_on_a_pool_whose_ring_has_not_formed_fails_saying_so(
    store: Store, tmp_path: Path
) -> None:
    status = _run(store, tmp_path, ring=None).status
    assert status.phase == "Failed"
    assert status.failure_reason == "NotInRing"
    assert "ring has not formed" in (status.failure_message or "")


class MixedLayouts(Result):
    """node-b held its share as float32 (numpy) while the coordinator runs exact."""

    members = (SimpleNamespace(node_id="node-a", layout="exact"),
               SimpleNamespace(node_id="node-b", layout="numpy"))  # fmt: skip


def test_a_member_holding_another_layout_is_a_job_event(store: Store, tmp_path: Path) -> None:
    assert _run(store, tmp_path, result=MixedLayouts()).status.phase == "Succeeded"
    [event] = [e for e in store.events("Job", "j") if e.reason == "MemberLayouts"]
    assert "node-b in the numpy layout" in event.message
    assert "node-a" not in event.message


def test_members_holding_the_coordinators_layout_make_no_event(
    store: Store, tmp_path: Path
) -> None:
    _run(store, tmp_path)
    assert not [e for e in store.events("Job", "j") if e.reason == "MemberLayouts"]
