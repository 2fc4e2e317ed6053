"""A Job's status fields are typed: what the agent writes (failure and finish reasons,
load progress, prompt token ids) reads back as declared fields, statuses stored by older
versions still load, and partial status writes are validated."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from manifests import Job, to_document
from manifests.job import JobStatus

SPEC = {"pool": "p", "prompt": "hi"}


def _job(status: dict[str, Any]) -> Job:
    return Job.model_validate({"metadata": {"name": "j"}, "spec": SPEC, "status": status})


def test_fields_the_agent_writes_read_back_typed() -> None:
    job = _job({
        "phase": "Failed", "failureReason": "MemberLost", "failureMessage": "node b went away",
        "finishReason": "length", "loadProgress": {"node-a": 1.0, "node-b": 0.25},
        "promptTokenIds": [5, 6, 7],
    })  # fmt: skip
    status = job.status
    assert (status.failure_reason, status.failure_message) == ("MemberLost", "node b went away")
    assert status.finish_reason == "length"
    assert status.load_progress == {"node-a": 1.0, "node-b": 0.25}
    assert status.prompt_token_ids == [5, 6, 7]
    assert status.model_extra == {}


def test_a_status_stored_by_an_older_version_loads_and_keeps_unknown_fields() -> None:
    job = _job({"phase": "Succeeded", "retiredField": {"a": 1}, "tokenIds": [3]})
    assert job.status.token_ids == [3]
    status = to_document(job)["status"]
    assert isinstance(status, dict)
    assert status["retiredField"] == {"a": 1}


def test_unset_new_fields_leave_the_document_as_before() -> None:
    status = to_document(_job({"phase": "Pending"}))["status"]
    assert isinstance(status, dict)
    assert set(status) == {"phase", "conditions", "tokenIds", "members"}


def test_a_wrongly_typed_stored_value_is_an_error_not_a_silent_extra() -> None:
    with pytest.raises(ValidationError, match="loadProgress"):
        _job({"loadProgress": {"node-a": "most of it"}})


def test_patch_gives_only_the_named_fields_in_camel_case() -> None:
    patch = JobStatus.patch(
        phase="Failed", failure_reason="Cancelled", failure_message="cancelled: by you"
    )
    assert patch == {
        "phase": "Failed", "failureReason": "Cancelled", "failureMessage": "cancelled: by you"
    }  # fmt: skip


def test_patch_camel_cases_nested_members_and_keeps_explicit_nulls() -> None:
    patch = JobStatus.patch(
        members=[{"node_id": "node-a", "columns": [0, 8], "bytes_sent": 12}],
        plan={"kind": "tensor", "predictedTokensPerSecond": None},
        tokens_per_second=None,
    )
    assert patch["members"] == [{"nodeId": "node-a", "columns": [0, 8], "bytesSent": 12}]
    assert patch["plan"] == {"kind": "tensor", "predictedTokensPerSecond": None}
    assert patch["tokensPerSecond"] is None


def test_patch_refuses_unknown_names_and_bad_values() -> None:
    with pytest.raises(TypeError, match="failureReason"):
        JobStatus.patch(failureReason="Cancelled")
    with pytest.raises(ValidationError):
        JobStatus.patch(phase="Exploded")


def test_a_patch_merged_into_a_stored_status_reads_back() -> None:
    stored = to_document(_job({"phase": "Running", "tokenIds": [1]}))["status"]
    assert isinstance(stored, dict)
    merged = {**stored, **JobStatus.patch(phase="Succeeded", finish_reason="eos")}
    status = _job(merged).status
    assert (status.phase, status.finish_reason, status.token_ids) == ("Succeeded", "eos", [1])
