"""A Job refused for its prompt (PromptTooLong) stays Failed and Stalled."""

from __future__ import annotations

from manifests import Job
from reconciler.controllers import job

REFUSED = {
    "phase": "Failed",
    "failureReason": "PromptTooLong",
    "failureMessage": "the prompt of 300 tokens ... context of 256 tokens",
}


def test_a_job_refused_for_its_prompt_is_stalled() -> None:
    refused = Job.model_validate(
        {"metadata": {"name": "j"}, "spec": {"pool": "p", "prompt": "x"}, "status": REFUSED}
    )
    plan = job.plan(refused, job.JobObserved(True, True, None, True, True), 0.0)
    assert plan.actions == []
    conditions = {c.type: c for c in plan.conditions}
    assert (conditions["Ready"].status, conditions["Ready"].reason) == ("False", "PromptTooLong")
    assert "context of 256" in conditions["Ready"].message
    assert (conditions["Stalled"].status, conditions["Stalled"].reason) == (
        "True",
        "PromptTooLong",
    )


def test_other_failures_are_not_stalled() -> None:
    failed = Job.model_validate(
        {
            "metadata": {"name": "j"},
            "spec": {"pool": "p", "prompt": "x"},
            "status": {**REFUSED, "failureReason": "MemberLost"},
        }
    )
    plan = job.plan(failed, job.JobObserved(True, True, None, True, True), 0.0)
    assert [c.type for c in plan.conditions] == ["Ready"]
