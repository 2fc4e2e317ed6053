"""A Job's sampling fields and the agent's wire format reach what every member runs with."""

from __future__ import annotations

import pydantic
import pytest

from manifests import Job
from reconciler.inference.q80reduce import WIRE_ENV
from reconciler.runtime.jobrunner import sampling_of, wire_of


def _job(**spec: object) -> Job:
    doc = {"metadata": {"name": "j"}, "spec": {"pool": "p", "prompt": "hi", **spec}}
    return Job.model_validate(doc)


def test_draft_tokens_reach_the_sampling_parameters() -> None:
    assert sampling_of(_job(draftTokens=8)).draft_tokens == 8
    assert sampling_of(_job()).draft_tokens == 0  # off unless asked
    assert sampling_of(_job(draftTokens=8, temperature=0.7)).speculative is False


@pytest.mark.parametrize("value", [-1, 17, "many"])
def test_draft_tokens_out_of_bounds_fail_validation(value: object) -> None:
    with pytest.raises(pydantic.ValidationError, match="draftTokens"):
        _job(draftTokens=value)


def test_the_offered_wire_follows_the_activations_unless_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(WIRE_ENV, raising=False)
    assert (wire_of("int8"), wire_of("exact")) == ("q80", "f32")
    monkeypatch.setenv(WIRE_ENV, "f32")
    assert wire_of("int8") == "f32"
    monkeypatch.setenv(WIRE_ENV, "q80")
    assert wire_of("exact") == "q80"
    monkeypatch.setenv(WIRE_ENV, "f16")
    with pytest.raises(ValueError, match="unknown wire format 'f16'"):
        wire_of("exact")
