"""The JSON bodies of job control messages as pydantic models: every value typed and
bounded, strictly (a bool is never a number, a float never an integer, text never a
number). Keys a newer peer adds are ignored; optional keys take the value an older
peer means by leaving them out. :func:`parse` raises only :class:`JobProtocolError`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reconciler.inference.sampling import MAX_DRAFT_TOKENS
from reconciler.jobs.errors import JobProtocolError

MAX_TEXT = 4096
MAX_LAYERS = 1 << 16
MAX_PROMPT = 1 << 20


def _int(lo: int, hi: int) -> Any:
    return Field(strict=True, ge=lo, le=hi)


def _number(lo: float | None = 0.0, hi: float | None = None) -> Any:
    return Field(strict=True, ge=lo, le=hi, allow_inf_nan=False)


Text = Annotated[str, Field(strict=True, max_length=MAX_TEXT)]
Count = Annotated[int, _int(0, 2**63 - 1)]
U64 = Annotated[int, _int(0, 2**64 - 1)]
Column = Annotated[int, _int(0, 2**31)]
Layer = Annotated[int, _int(0, MAX_LAYERS)]
Millis = Annotated[float, _number()]
Penalty = Annotated[float, _number(-2.0, 2.0)]
Flag = Annotated[bool, Field(strict=True)]

# a participant of an offer: [node, start, end] or, in a pipeline, [..., first, last layer)
Columns = tuple[Text, Column, Column]
Stage = tuple[Text, Column, Column, Layer, Layer]


class Body(BaseModel):
    """What every control message carries."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    job: Text
    session: U64


class Sampling(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    max_tokens: Annotated[int, _int(1, 2**31)]
    temperature: Annotated[float, _number()]
    top_k: Annotated[int, _int(0, 2**31)]
    top_p: Annotated[float, _number(0.0, 1.0)]
    seed: U64
    stop: Annotated[list[Text], Field(max_length=64)]
    ignore_eos: Flag
    presence_penalty: Penalty = 0.0
    frequency_penalty: Penalty = 0.0
    repetition_penalty: Annotated[float, _number(0.0, 10.0)] = 1.0
    draft_tokens: Annotated[int, _int(0, MAX_DRAFT_TOKENS)] = 0


class Offer(Body):
    model: Text
    prompt: Annotated[list[Annotated[int, _int(0, 2**31 - 1)]], Field(max_length=MAX_PROMPT)]
    sampling: Sampling
    epoch: Count
    hash: Text
    columns: Annotated[int, _int(1, 2**31)]
    members: Annotated[list[Columns | Stage], Field(min_length=1, max_length=4096)]
    wire: Literal["f32", "q80"] = "f32"
    plan: Literal["single", "tensor", "pipeline"] = "tensor"


class Ready(Body):
    node: Text
    load_ms: Millis
    resident: Count


class Refusal(Body):
    """LOAD_FAILED (with ``node``) and ABORT."""

    reason: Text
    message: Text


class LoadFailed(Refusal):
    node: Text


class Progress(Body):
    node: Text
    fraction: Annotated[float, _number(0.0, 1.0)]


class Stats(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    node: Text
    start: Count
    end: Count
    compute_ms: Millis
    comm_ms: Millis
    bytes_sent: Count
    messages: Count
    collectives: Count
    load_ms: Millis
    resident: Count
    prefill_ms: Millis
    tokens: Count
    layout: Text = ""  # older members leave it out


class Done(Body):
    stats: Stats


B = TypeVar("B", bound=BaseModel)


def parse(model: type[B], doc: Any) -> B:
    """``doc`` (decoded JSON) as ``model``; JobProtocolError naming the first problem."""
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in error["loc"]) or "body"
        raise JobProtocolError(f"{where}: {error['msg']}") from None
