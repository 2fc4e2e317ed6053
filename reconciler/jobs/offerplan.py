"""The plan part of a job offer: participants with their columns and layers, checked
against the plan kind and the ring's columns once the offer's body is typed
(fields.Offer; anything else raises :class:`JobProtocolError`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reconciler.jobs.errors import JobProtocolError
from reconciler.jobs.fields import Columns, Stage

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


def participant(m: Columns | Stage, columns: int, pipeline: bool) -> Participant:
    """A typed member of an offer: its columns within the ring's, layers in a pipeline."""
    node, start, end = m[0], m[1], m[2]
    if start > columns or end > columns:
        raise JobProtocolError(f"member {node!r}: columns beyond the ring's {columns}")
    if not pipeline:
        return Participant(node, start, end)
    if len(m) != 5:
        raise JobProtocolError(f"member {node!r}: a pipeline stage names its layers")
    return Participant(node, start, end, m[3], m[4])


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
