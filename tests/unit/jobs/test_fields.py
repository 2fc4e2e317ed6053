"""Control message bodies are typed strictly by pydantic models: what a peer sends is
either the value we mean or one JobProtocolError naming the field; keys a newer peer
adds are ignored and keys an older peer leaves out take their old meaning."""

from __future__ import annotations

import json
from typing import Any

import pytest

from reconciler.jobs import fields
from reconciler.jobs.errors import JobProtocolError
from reconciler.jobs.messages import JobDone, JobOffer, JobReady, decode

READY = {"job": "j", "session": 7, "node": "node-a", "load_ms": 12.5, "resident": 4096}
SAMPLING = {"max_tokens": 4, "temperature": 0.0, "top_k": 0, "top_p": 1.0, "seed": 0,
            "stop": [], "ignore_eos": False}  # fmt: skip
OFFER = {"job": "j", "session": 7, "model": "demo", "prompt": [1, 2], "sampling": SAMPLING,
         "epoch": 3, "hash": "ab", "columns": 8, "members": [["node-a", 0, 4], ["node-b", 4, 8]]}  # fmt: skip

STATS = {"node": "n", "start": 0, "end": 8, "compute_ms": 1.5, "comm_ms": 0.5, "bytes_sent": 10,
         "messages": 2, "collectives": 3, "load_ms": 4.0, "resident": 99, "prefill_ms": 2.0,
         "tokens": 5}  # fmt: skip


def _frame(code: int, doc: Any) -> bytes:
    return b"MJ\x01" + bytes([code]) + json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"session": True}, "session"),  # a bool is not a number
        ({"session": 7.0}, "session"),  # nor is a float an integer
        ({"session": "7"}, "session"),  # nor text
        ({"load_ms": 10**400}, "load_ms"),  # an integer too big for a float
        ({"load_ms": -1.0}, "load_ms"),
        ({"resident": 2**63}, "resident"),
        ({"node": 5}, "node"),
        ({"node": "n" * 5000}, "node"),
        ({"node": None}, "node"),
    ],
)
def test_a_wrongly_typed_value_is_one_error_naming_its_field(
    change: dict[str, Any], field: str
) -> None:
    with pytest.raises(JobProtocolError, match=f"^{field}: "):
        decode(_frame(2, {**READY, **change}))


def test_a_missing_field_is_named() -> None:
    doc = {k: v for k, v in READY.items() if k != "resident"}
    with pytest.raises(JobProtocolError, match=r"^resident: Field required"):
        decode(_frame(2, doc))


def test_a_nested_field_is_named_by_its_path() -> None:
    with pytest.raises(JobProtocolError, match=r"^sampling\.stop\.1: "):
        decode(_frame(1, {**OFFER, "sampling": {**SAMPLING, "stop": ["a", 3]}}))
    with pytest.raises(JobProtocolError, match=r"^stats\.tokens: "):
        decode(_frame(7, {"job": "j", "session": 1, "stats": {**STATS, "tokens": "9"}}))


def test_keys_a_newer_peer_adds_are_ignored() -> None:
    got = decode(_frame(2, {**READY, "gpu": "yes", "extras": {"a": [1]}}))
    assert got == JobReady("j", 7, "node-a", 12.5, 4096)


def test_an_integer_where_a_number_is_expected_is_that_number() -> None:
    got = decode(_frame(2, {**READY, "load_ms": 12}))
    assert isinstance(got, JobReady) and got.load_ms == 12.0 and isinstance(got.load_ms, float)


def test_keys_an_older_coordinator_leaves_out_take_their_old_meaning() -> None:
    got = decode(_frame(1, OFFER))
    assert isinstance(got, JobOffer)
    assert (got.wire, got.plan, got.sampling.draft_tokens) == ("f32", "tensor", 0)
    assert (got.sampling.presence_penalty, got.sampling.repetition_penalty) == (0.0, 1.0)


@pytest.mark.parametrize(
    "members",
    [
        [["node-a", 0, 4], ["node-b", 4, 9]],  # beyond the ring's 8 columns
        [["node-a", 0, 4, 0], ["node-b", 4, 8]],  # neither a share nor a stage
        [["node-a", 0, "4"], ["node-b", 4, 8]],
        [],
    ],
)
def test_malformed_members_are_one_error(members: list[Any]) -> None:
    with pytest.raises(JobProtocolError):
        decode(_frame(1, {**OFFER, "members": members}))


def test_a_pipeline_stage_must_name_its_layers() -> None:
    stages = [["node-a", 0, 8, 0, 2], ["node-b", 0, 8]]
    with pytest.raises(JobProtocolError, match="names its layers"):
        decode(_frame(1, {**OFFER, "plan": "pipeline", "members": stages}))


def test_done_carries_every_figure() -> None:
    got = decode(_frame(7, {"job": "j", "session": 1, "stats": STATS}))
    assert isinstance(got, JobDone)
    assert (got.stats.messages_sent, got.stats.resident_bytes, got.stats.completion_tokens) == (
        2, 99, 5
    )  # fmt: skip


def test_parse_raises_only_job_protocol_errors() -> None:
    docs: tuple[object, ...] = (None, [], "x", 5, {"job": "j"})
    for doc in docs:
        with pytest.raises(JobProtocolError):
            fields.parse(fields.Body, doc)
