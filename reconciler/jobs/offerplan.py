"""The plan part of a job offer: participants with their columns and layers, the plan
kind and the wire format, read from a peer's JSON with every value bounded and checked
(anything else raises :class:`JobProtocolError`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reconciler.jobs.errors import JobProtocolError
from reconciler.jobs.fields import Fields

MAX_LAYERS = 1 << 16
PLANS = ("single", "tensor", "pipeline")


@dataclass(frozen=True)
class Participant:
    """A ring member taking part in a job: its rank (or stage) is its index in the offer.

    ``start``/``end`` are its ring columns ``[start, end)`` (a tensor plan's share; every
    column for single and pipeline); ``layer_start``/``layer_end`` its decoder layers in
    a pipeline plan (ignored by the other plans)."""

    node_id: str
    start: int
    end: int
    layer_start: int = 0
    layer_end: int = 0


def participant_doc(plan: str, p: Participant) -> list[Any]:
    if plan == "pipeline":
        return [p.node_id, p.start, p.end, p.layer_start, p.layer_end]
    return [p.node_id, p.start, p.end]


def participant(m: Fields, columns: int, pipeline: bool) -> Participant:
    node, start, end = m.text(0), m.integer(1, 0, columns), m.integer(2, 0, columns)
    if not pipeline:
        return Participant(node, start, end)
    return Participant(node, start, end, m.integer(3, 0, MAX_LAYERS), m.integer(4, 0, MAX_LAYERS))


def choice(f: Fields, key: str, choices: tuple[str, ...], default: str) -> str:
    """An optional field with a few allowed values (absent: an older coordinator's)."""
    if not isinstance(f.value, dict) or key not in f.value:
        return default
    value = f.text(key, 16)
    if value not in choices:
        raise JobProtocolError(f"{key!r} must be one of {', '.join(choices)}")
    return value


def check_plan(plan: str, columns: int, members: tuple[Participant, ...]) -> None:
    """The participants make sense for the plan: one for single, column ranges that tile
    the ring's columns for tensor, contiguous non-empty layer ranges for pipeline."""
    if plan == "single" and len(members) != 1:
        raise JobProtocolError("a single plan has exactly one participant")
    if plan == "tensor":
        ranges = [(p.start, p.end) for p in members]
        if [a for a, _ in ranges] != [0, *(b for _, b in ranges[:-1])] or ranges[-1][1] != columns:
            raise JobProtocolError("a tensor plan's column ranges must tile [0, columns)")
        if any(b <= a for a, b in ranges):
            raise JobProtocolError("a tensor plan's column ranges must not be empty")
    if plan == "pipeline":
        starts = [0, *(p.layer_end for p in members[:-1])]
        if [p.layer_start for p in members] != starts or any(
            p.layer_end <= p.layer_start for p in members
        ):
            raise JobProtocolError("a pipeline's layer ranges must be contiguous from 0")
