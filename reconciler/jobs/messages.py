"""Job control messages on the CONTROL channel: a 4-byte header, then canonical JSON.

Layout::

    offset size  field
    0      2     magic  b"MJ"
    2      1     version (1)
    3      1     message type (see ``MessageType``)
    4      ...   UTF-8 JSON object, sorted keys, no spaces, no NaN (never pickle)

Every message carries the job id and a 64-bit ``session`` chosen by the coordinator per
run, so frames of an earlier attempt of the same job are never mixed into a new one.
:func:`decode` raises only :class:`JobProtocolError`.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from reconciler.inference.sampling import SamplingParams
from reconciler.jobs import fields
from reconciler.jobs.errors import JobProtocolError
from reconciler.jobs.offerplan import (
    Participant as Participant,
)
from reconciler.jobs.offerplan import check_plan, participant, participant_doc

MAGIC = b"MJ"
VERSION = 1
MAX_MESSAGE = 8 << 20
MAX_TEXT = 1000
_HEADER = struct.Struct("<2sBB")


class MessageType(IntEnum):
    """Code of each control message."""

    OFFER = 1
    READY = 2
    LOAD_FAILED = 3
    PROGRESS = 4
    START = 5
    ABORT = 6
    DONE = 7


@dataclass(frozen=True)
class MemberStats:
    """What one member spent on a job."""

    node_id: str
    start: int  # ring columns [start, end)
    end: int
    compute_ms: float
    comm_ms: float
    bytes_sent: int
    messages_sent: int
    collectives: int
    load_ms: float
    resident_bytes: int
    prefill_ms: float
    completion_tokens: int
    layout: str = ""  # the weights' layout: exact, int8 or numpy ("" unknown)


@dataclass(frozen=True)
class JobOffer:
    """Coordinator -> every participant: load your slice of this job."""

    job_id: str
    session: int
    model_ref: str
    prompt_ids: tuple[int, ...]
    sampling: SamplingParams
    ring_epoch: int
    ring_hash: str
    shard_columns: int
    participants: tuple[Participant, ...]
    wire: str = "f32"  # all-reduce contributions: "f32" or "q80" (q80reduce), the same for all
    plan: str = "tensor"  # one of PLANS

    def rank_of(self, node_id: str) -> int | None:
        """The rank of ``node_id``, or None when it takes no part."""
        ids = [p.node_id for p in self.participants]
        return ids.index(node_id) if node_id in ids else None


@dataclass(frozen=True)
class JobReady:
    """Member -> coordinator: my slice is resident."""

    job_id: str
    session: int
    node_id: str
    load_ms: float
    resident_bytes: int


@dataclass(frozen=True)
class JobLoadFailed:
    """Member -> coordinator: I cannot take part."""

    job_id: str
    session: int
    node_id: str
    reason: str
    message: str


@dataclass(frozen=True)
class LoadProgress:
    """Member -> coordinator: fraction of my slice loaded."""

    job_id: str
    session: int
    node_id: str
    fraction: float


@dataclass(frozen=True)
class JobStart:
    """Coordinator -> every participant: everyone is ready, run the generation loop."""

    job_id: str
    session: int


@dataclass(frozen=True)
class JobAbort:
    """Either direction: stop this job (a member reports why it could not go on)."""

    job_id: str
    session: int
    reason: str
    message: str


@dataclass(frozen=True)
class JobDone:
    """Member -> coordinator: I generated the completion; here is what it cost."""

    job_id: str
    session: int
    stats: MemberStats


Message = JobOffer | JobReady | JobLoadFailed | LoadProgress | JobStart | JobAbort | JobDone

_TYPES: dict[type[Any], MessageType] = {
    JobOffer: MessageType.OFFER,
    JobReady: MessageType.READY,
    JobLoadFailed: MessageType.LOAD_FAILED,
    LoadProgress: MessageType.PROGRESS,
    JobStart: MessageType.START,
    JobAbort: MessageType.ABORT,
    JobDone: MessageType.DONE,
}


def encode(message: Message) -> bytes:
    """Header + canonical JSON of ``message``."""
    doc = _to_doc(message)
    body = json.dumps(
        doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return _HEADER.pack(MAGIC, VERSION, _TYPES[type(message)]) + body.encode("utf-8")


def decode(data: bytes) -> Message:
    """One message from ``data``; anything malformed raises JobProtocolError."""
    if len(data) < _HEADER.size or len(data) > MAX_MESSAGE:
        raise JobProtocolError(f"control message of {len(data)} bytes")
    magic, version, code = _HEADER.unpack_from(data)
    if magic != MAGIC or version != VERSION:
        raise JobProtocolError(f"bad header {magic!r} version {version}")
    if code not in MessageType._value2member_map_:
        raise JobProtocolError(f"unknown message type {code}")
    try:
        doc = json.loads(data[_HEADER.size :].decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise JobProtocolError(f"body is not JSON: {exc}") from exc
    return _from_doc(MessageType(code), doc)


def _no_constant(name: str) -> None:
    raise JobProtocolError(f"{name} is not allowed")


def _to_doc(m: Message) -> dict[str, Any]:
    doc: dict[str, Any] = {"job": m.job_id, "session": m.session}
    if isinstance(m, JobOffer):
        doc.update(
            model=m.model_ref,
            prompt=list(m.prompt_ids),
            sampling=_sampling_doc(m.sampling),
            epoch=m.ring_epoch,
            hash=m.ring_hash,
            columns=m.shard_columns,
            members=[participant_doc(m.plan, p) for p in m.participants],
            **({"wire": m.wire} if m.wire != "f32" else {}),  # older members read the rest
            **({"plan": m.plan} if m.plan != "tensor" else {}),
        )
    elif isinstance(m, JobReady):
        doc.update(node=m.node_id, load_ms=m.load_ms, resident=m.resident_bytes)
    elif isinstance(m, JobLoadFailed):
        doc.update(node=m.node_id, reason=m.reason, message=m.message[:MAX_TEXT])
    elif isinstance(m, LoadProgress):
        doc.update(node=m.node_id, fraction=m.fraction)
    elif isinstance(m, JobAbort):
        doc.update(reason=m.reason, message=m.message[:MAX_TEXT])
    elif isinstance(m, JobDone):
        doc.update(stats=_stats_doc(m.stats))
    return doc


def _from_doc(code: MessageType, doc: Any) -> Message:
    if code is MessageType.OFFER:
        return _offer(fields.parse(fields.Offer, doc))
    if code is MessageType.READY:
        r = fields.parse(fields.Ready, doc)
        return JobReady(r.job, r.session, r.node, r.load_ms, r.resident)
    if code is MessageType.LOAD_FAILED:
        f = fields.parse(fields.LoadFailed, doc)
        return JobLoadFailed(f.job, f.session, f.node, f.reason, f.message)
    if code is MessageType.PROGRESS:
        p = fields.parse(fields.Progress, doc)
        return LoadProgress(p.job, p.session, p.node, p.fraction)
    if code is MessageType.START:
        b = fields.parse(fields.Body, doc)
        return JobStart(b.job, b.session)
    if code is MessageType.ABORT:
        a = fields.parse(fields.Refusal, doc)
        return JobAbort(a.job, a.session, a.reason, a.message)
    d = fields.parse(fields.Done, doc)
    return JobDone(d.job, d.session, _stats(d.stats))


def _offer(o: fields.Offer) -> JobOffer:
    members = tuple(participant(m, o.columns, o.plan == "pipeline") for m in o.members)
    if len({p.node_id for p in members}) != len(members):
        raise JobProtocolError("a node appears twice in the offer")
    check_plan(o.plan, o.columns, members)
    return JobOffer(
        job_id=o.job,
        session=o.session,
        model_ref=o.model,
        prompt_ids=tuple(o.prompt),
        sampling=_sampling(o.sampling),
        ring_epoch=o.epoch,
        ring_hash=o.hash,
        shard_columns=o.columns,
        participants=members,
        wire=o.wire,
        plan=o.plan,
    )


def _sampling_doc(p: SamplingParams) -> dict[str, Any]:
    return {
        "max_tokens": p.max_tokens,
        "temperature": p.temperature,
        "top_k": p.top_k,
        "top_p": p.top_p,
        "seed": p.seed,
        "stop": list(p.stop),
        "ignore_eos": p.ignore_eos,
        **_penalties_doc(p),
        **({"draft_tokens": p.draft_tokens} if p.draft_tokens else {}),  # as the penalties
    }


def _penalties_doc(p: SamplingParams) -> dict[str, float]:
    """Only the penalties that are on: a member of an older version reads the rest."""
    doc = {
        "presence_penalty": p.presence_penalty,
        "frequency_penalty": p.frequency_penalty,
        "repetition_penalty": p.repetition_penalty,
    }
    return {k: v for k, v in doc.items() if v != (1.0 if k == "repetition_penalty" else 0.0)}


def _sampling(s: fields.Sampling) -> SamplingParams:
    try:
        return SamplingParams(**{**s.model_dump(), "stop": tuple(s.stop)})
    except ValueError as exc:
        raise JobProtocolError(f"bad sampling parameters: {exc}") from exc


def _stats_doc(s: MemberStats) -> dict[str, Any]:
    return {
        "node": s.node_id,
        "start": s.start,
        "end": s.end,
        "compute_ms": s.compute_ms,
        "comm_ms": s.comm_ms,
        "bytes_sent": s.bytes_sent,
        "messages": s.messages_sent,
        "collectives": s.collectives,
        "load_ms": s.load_ms,
        "resident": s.resident_bytes,
        "prefill_ms": s.prefill_ms,
        "tokens": s.completion_tokens,
        "layout": s.layout,
    }


def _stats(s: fields.Stats) -> MemberStats:
    return MemberStats(
        node_id=s.node,
        start=s.start,
        end=s.end,
        compute_ms=s.compute_ms,
        comm_ms=s.comm_ms,
        bytes_sent=s.bytes_sent,
        messages_sent=s.messages,
        collectives=s.collectives,
        load_ms=s.load_ms,
        resident_bytes=s.resident,
        prefill_ms=s.prefill_ms,
        completion_tokens=s.tokens,
        layout=s.layout,
    )
