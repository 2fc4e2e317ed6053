"""Control messages: round trips, and every malformed input is one JobProtocolError."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from reconciler.inference.sampling import SamplingParams
from reconciler.jobs.errors import JobProtocolError
from reconciler.jobs.messages import (
    JobAbort,
    JobDone,
    JobLoadFailed,
    JobOffer,
    JobReady,
    JobStart,
    LoadProgress,
    MemberStats,
    Message,
    Participant,
    decode,
    encode,
)

OFFER = JobOffer(
    job_id="default/hello",
    session=2**64 - 1,
    model_ref="demo",
    prompt_ids=(1, 31, 2**31 - 1),
    sampling=SamplingParams(
        max_tokens=9,
        temperature=0.7,
        top_k=40,
        top_p=0.9,
        seed=3,
        stop=("\n\n", "é"),
        ignore_eos=True,
    ),
    ring_epoch=4,
    ring_hash="ab" * 32,
    shard_columns=8192,
    participants=(Participant("node-a", 0, 5000), Participant("node-b", 5000, 8192)),
)
STATS = MemberStats("node-b", 5000, 8192, 12.5, 3.25, 4096, 62, 62, 100.0, 1 << 30, 4.0, 9)
MESSAGES: list[Message] = [
    OFFER,
    JobReady("j", 1, "node-b", 12.0, 1 << 33),
    JobLoadFailed("j", 1, "node-b", "ModelNotFound", "no such file"),
    LoadProgress("j", 1, "node-b", 0.5),
    JobStart("j", 1),
    JobAbort("j", 1, "MemberLost", "node-c was lost"),
    JobDone("j", 1, STATS),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_round_trip(message: Message) -> None:
    assert decode(encode(message)) == message


def test_offer_knows_ranks() -> None:
    assert [OFFER.rank_of("node-a"), OFFER.rank_of("node-b"), OFFER.rank_of("x")] == [0, 1, None]


def test_encoding_is_canonical_json_after_a_small_header() -> None:
    data = encode(JobStart("j", 7))
    assert data[:4] == b"MJ\x01\x05"
    assert data[4:] == b'{"job":"j","session":7}'


def test_long_reasons_are_truncated() -> None:
    msg = decode(encode(JobAbort("j", 1, "Aborted", "x" * 5000)))
    assert isinstance(msg, JobAbort) and len(msg.message) == 1000


def _frame(code: int, doc: object) -> bytes:
    return b"MJ\x01" + bytes([code]) + json.dumps(doc).encode()


def _offer_doc(**changes: object) -> dict[str, object]:
    doc: dict[str, object] = json.loads(encode(OFFER)[4:])
    doc.update(changes)
    return doc


BAD = {
    "empty": b"",
    "short": b"MJ\x01",
    "magic": b"XX\x01\x05{}",
    "version": b"MJ\x02\x05" + b'{"job":"j","session":1}',
    "type": b"MJ\x01\x63" + b'{"job":"j","session":1}',
    "not-json": b"MJ\x01\x05{job",
    "not-utf8": b"MJ\x01\x05\xff\xfe",
    "nan": b'MJ\x01\x04{"job":"j","session":1,"node":"n","fraction":NaN}',
    "array": _frame(5, ["j", 1]),
    "missing": _frame(5, {"job": "j"}),
    "bool-session": _frame(5, {"job": "j", "session": True}),
    "negative-session": _frame(5, {"job": "j", "session": -1}),
    "huge-session": _frame(5, {"job": "j", "session": 2**64}),
    "int-job": _frame(5, {"job": 5, "session": 1}),
    "fraction": _frame(4, {"job": "j", "session": 1, "node": "n", "fraction": 1.5}),
    "stats": _frame(7, {"job": "j", "session": 1, "stats": {"node": "n"}}),
    "top-p": _frame(1, _offer_doc(sampling={**_offer_doc()["sampling"], "top_p": 0.0})),  # type: ignore[dict-item]
    "token": _frame(1, _offer_doc(prompt=[1, -2])),
    "twice": _frame(1, _offer_doc(members=[["a", 0, 1], ["a", 1, 8192]])),
    "no-members": _frame(1, _offer_doc(members=[])),
    "member-shape": _frame(1, _offer_doc(members=[["a", 0]])),
    "column": _frame(1, _offer_doc(members=[["a", 0, 9000]])),
    "stop": _frame(1, _offer_doc(sampling={**_offer_doc()["sampling"], "stop": [1]})),  # type: ignore[dict-item]
    "too-big": b"MJ\x01\x05" + b" " * (8 << 20),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_malformed_is_one_error(name: str) -> None:
    with pytest.raises(JobProtocolError):
        decode(BAD[name])


def test_every_truncation_is_one_error() -> None:
    data = encode(OFFER)
    for n in range(len(data)):
        with pytest.raises(JobProtocolError):
            decode(data[:n])


def test_draft_tokens_travel_in_the_offer_and_default_to_off() -> None:
    spec = replace(OFFER, sampling=replace(OFFER.sampling, temperature=0.0, draft_tokens=16))
    assert decode(encode(spec)) == spec
    assert "draft_tokens" not in json.loads(encode(OFFER)[4:])["sampling"]  # older members
    got = decode(encode(OFFER))
    assert isinstance(got, JobOffer) and got.sampling.draft_tokens == 0


@pytest.mark.parametrize("value", [-1, 17, 2**70, True, 2.5, "4", None, [4]])
def test_hostile_draft_tokens_are_one_error(value: object) -> None:
    sampling = {**_offer_doc()["sampling"], "draft_tokens": value}  # type: ignore[dict-item]
    with pytest.raises(JobProtocolError):
        decode(_frame(1, _offer_doc(sampling=sampling)))


def test_the_wire_format_travels_in_the_offer_and_defaults_to_f32() -> None:
    q80 = replace(OFFER, wire="q80")
    assert decode(encode(q80)) == q80
    assert "wire" not in json.loads(encode(OFFER)[4:])  # older members read the rest
    got = decode(encode(OFFER))
    assert isinstance(got, JobOffer) and got.wire == "f32"


@pytest.mark.parametrize("value", ["f16", "", "Q80", 80, None, ["q80"]])
def test_hostile_wire_formats_are_one_error(value: object) -> None:
    with pytest.raises(JobProtocolError):
        decode(_frame(1, _offer_doc(wire=value)))
