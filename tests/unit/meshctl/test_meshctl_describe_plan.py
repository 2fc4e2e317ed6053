"""`meshctl describe job` shows the plan, why, and the predicted and measured tok/s."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from manifests import Job
from manifests.job import JobStatus
from meshctl.jobplan_view import plan_lines
from reconciler.entry import meshctl_app as app
from reconciler.home import Home
from reconciler.jobs.messages import MemberStats
from reconciler.jobs.results import JobResult
from reconciler.placement.ringplan import JobPlan, PlanSlot
from reconciler.store import Store

runner = CliRunner()
PLAN = JobPlan(
    "pipeline",
    (PlanSlot("node-a", 0, 8192, 0, 12), PlanSlot("node-b", 0, 8192, 12, 30)),
    "pipeline on 2 members: predicted 31.5 tok/s beats single 20.1, tensor 9.8 tok/s",
    31.46,
    {"single": 20.1, "tensor": 9.8, "pipeline": 31.46},
)


def _result() -> JobResult:
    stats = [
        MemberStats(n, 0, 8192, 10.0, 2.0, 4096, 9, 9, 50.0, 1 << 20, 3.0, 9)
        for n in ("node-a", "node-b")
    ]
    return JobResult(
        "hello", list(range(9)), "text", "length", 5, 9, 27.25, 100.0, 12.0, 50.0, 3.0, 300.0,
        stats, 3, "ab" * 32, [], PLAN, "q80", 4, [(0, 12), (12, 30)],
    )  # fmt: skip


def _stored_job(home: Home) -> None:
    job = Job.model_validate({"metadata": {"name": "hello"}, "spec": {"pool": "p", "prompt": "hi"}})
    with Store.open(home.root) as store:
        store.apply(job)
        status = JobStatus.patch(**_result().status_fields(), phase="Succeeded")
        store.patch_status("Job", "hello", status)


def test_describe_job_shows_the_plan_and_both_speeds(home: Home) -> None:
    _stored_job(home)
    out = runner.invoke(app, ["describe", "job", "hello"]).stdout
    assert "Plan:\n  Kind:       pipeline\n" in out
    assert "predicted 31.5 tok/s beats single 20.1" in out
    assert "  Tokens/s:   predicted 31.5, measured 27.2\n" in out
    assert "  Wire:       q80\n" in out
    assert "  Rounds:     4 decode passes, 2.0 tokens per pass\n" in out
    assert "  node-a:     layers 0-12\n  node-b:     layers 12-30\n" in out


def test_json_and_the_wide_table_carry_the_plan(home: Home) -> None:
    _stored_job(home)
    doc = json.loads(runner.invoke(app, ["describe", "job", "hello", "-o", "json"]).stdout)
    status = doc["status"]
    assert status["plan"]["kind"] == "pipeline" and status["plan"]["wire"] == "q80"
    assert status["plan"]["predictedTokensPerSecond"] == 31.46
    assert status["tokensPerSecond"] == 27.25 and status["decodeRounds"] == 4
    assert status["tokensPerRound"] == 2.0
    assert [m["layers"] for m in status["members"]] == [[0, 12], [12, 30]]
    wide = runner.invoke(app, ["get", "jobs", "-o", "wide"]).stdout
    assert "PLAN" in wide and "pipeline" in wide


def test_a_job_without_a_plan_has_no_plan_section() -> None:
    assert plan_lines({"phase": "Pending"}) == []
    lines = plan_lines(
        {"plan": {"kind": "single"}, "members": [{"nodeId": "a", "columns": [0, 8]}]}
    )
    assert lines[0] == "  Kind:       single"
    assert "  Tokens/s:   predicted -, measured -" in lines
    assert lines[-1] == "  a:          columns 0-8"
