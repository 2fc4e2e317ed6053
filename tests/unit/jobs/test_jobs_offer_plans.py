"""The plan in the offer: round trips per plan, hostile values, a member's share."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from reconciler.inference import full_share, load_model_info
from reconciler.inference.config import ModelConfig
from reconciler.inference.sharding import plan_shares
from reconciler.jobs.errors import JobProtocolError
from reconciler.jobs.messages import JobOffer, Participant, decode, encode
from reconciler.jobs.plans import resolve_wire, share_for
from tests.unit.jobs.test_jobs_messages import OFFER

MODELS = Path(__file__).resolve().parents[2] / "fixtures" / "models"
STAGES = (Participant("node-a", 0, 8192, 0, 1), Participant("node-b", 0, 8192, 1, 2))
PLANS = {
    "single": replace(OFFER, plan="single", participants=(Participant("node-a", 0, 8192),)),
    "tensor": replace(OFFER, plan="tensor", wire="q80"),
    "pipeline": replace(OFFER, plan="pipeline", wire="f32", participants=STAGES),
}


@pytest.mark.parametrize("kind", sorted(PLANS))
def test_every_plan_round_trips(kind: str) -> None:
    offer = PLANS[kind]
    assert decode(encode(offer)) == offer


def test_an_offer_of_an_older_coordinator_is_a_tensor_plan() -> None:
    doc = json.loads(encode(OFFER)[4:])
    doc.pop("plan", None), doc.pop("wire", None)
    got = decode(encode(OFFER)[:4] + json.dumps(doc).encode())
    assert isinstance(got, JobOffer) and (got.plan, got.wire) == ("tensor", "f32")


def _hostile(kind: str, **changes: object) -> bytes:
    doc = json.loads(encode(PLANS[kind])[4:])
    doc.update(changes)
    return encode(OFFER)[:4] + json.dumps(doc).encode()


HOSTILE = {
    "unknown-plan": _hostile("tensor", plan="ring"),
    "plan-number": _hostile("tensor", plan=2),
    "long-plan": _hostile("tensor", plan="t" * 10_000),
    "unknown-wire": _hostile("tensor", wire="q81"),
    "unresolved-wire": _hostile("tensor", wire="auto"),  # the coordinator resolves it
    "wire-null": _hostile("tensor", wire=None),
    "single-of-two": _hostile("tensor", plan="single"),
    "tensor-gap": _hostile("tensor", members=[["node-a", 0, 4000], ["node-b", 5000, 8192]]),
    "tensor-short": _hostile("tensor", members=[["node-a", 0, 4000], ["node-b", 4000, 8000]]),
    "tensor-empty": _hostile("tensor", members=[["node-a", 0, 0], ["node-b", 0, 8192]]),
    "stage-no-layers": _hostile("pipeline", members=[["node-a", 0, 8192], ["node-b", 0, 8192]]),
    "stage-gap": _hostile(
        "pipeline", members=[["node-a", 0, 8192, 0, 1], ["node-b", 0, 8192, 2, 3]]
    ),
    "stage-late-start": _hostile(
        "pipeline", members=[["node-a", 0, 8192, 1, 2], ["node-b", 0, 8192, 2, 3]]
    ),
    "stage-empty": _hostile(
        "pipeline", members=[["node-a", 0, 8192, 0, 0], ["node-b", 0, 8192, 0, 2]]
    ),
    "stage-negative": _hostile(
        "pipeline", members=[["node-a", 0, 8192, -1, 1], ["node-b", 0, 8192, 1, 2]]
    ),
    "stage-huge": _hostile(
        "pipeline", members=[["node-a", 0, 8192, 0, 2**40], ["node-b", 0, 8192, 2**40, 2**41]]
    ),
    "stage-float": _hostile(
        "pipeline", members=[["node-a", 0, 8192, 0, 1.5], ["node-b", 0, 8192, 1.5, 3]]
    ),
    "stage-bool": _hostile(
        "pipeline", members=[["node-a", 0, 8192, False, True], ["node-b", 0, 8192, 1, 2]]
    ),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_plans_are_one_error(name: str) -> None:
    with pytest.raises(JobProtocolError):
        decode(HOSTILE[name])


@pytest.fixture(scope="module")
def config() -> ModelConfig:
    return load_model_info(MODELS / "tiny-qwen2-hf").config


def test_a_member_s_share_follows_the_plan(config: ModelConfig) -> None:
    assert share_for(PLANS["single"], 0, config) == full_share(config)
    tensor = PLANS["tensor"]
    want = plan_shares(config, [(0, 5000), (5000, 8192)], 8192)
    assert [share_for(tensor, r, config) for r in (0, 1)] == want


def test_stages_that_do_not_cover_the_model_are_refused(config: ModelConfig) -> None:
    three = replace(
        PLANS["pipeline"],
        participants=(*STAGES, Participant("node-c", 0, 8192, 2, 3)),
    )
    with pytest.raises(ValueError, match="3 layers, the model 2"):
        share_for(three, 0, config)


def test_the_wire_follows_the_member_s_activations() -> None:
    assert [resolve_wire("auto", a) for a in ("int8", "exact")] == ["q80", "f32"]
    assert [resolve_wire(w, "int8") for w in ("f32", "q80")] == ["f32", "q80"]
