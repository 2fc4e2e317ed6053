"""A job's plan on a ring: who takes part, with which columns and layers (pure).

The ring (positions and column ranges, as the topology file keeps them) stays the
guide; a plan is derived from it:

- ``single``: the coordinator alone, holding every column and layer.
- ``tensor``: the chosen members in ring position order. Measured, their column ranges
  are re-cut from the placement's fractions (shares by speed and memory); unmeasured,
  they are the ring's own ranges.
- ``pipeline``: the coordinator first (it holds the embedding and the LM head), then the
  other stages; every stage holds all columns of a contiguous range of layers. Measured,
  the layer counts are the placement's; unmeasured, they follow the ring's column widths.

With measurements, :func:`~reconciler.placement.planner.choose_plan` decides (and raises
PlanError when nothing fits); without any for the coordinator, ``auto`` keeps today's
plan: tensor over the whole ring.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from reconciler.placement.inputs import LinkMeasure, MemberMeasure, ModelCost
from reconciler.placement.planner import PlanError, choose_plan
from reconciler.placement.stages import largest_remainder as largest_remainder

Measures = tuple[list[MemberMeasure], list[LinkMeasure]]
UNMEASURED = "no measurements of this pool yet"
PARTLY = "not every member and link of the ring is measured yet"


class MeasureSource(Protocol):
    """What the agent publishes of its pool: every member's and link's measurements."""

    def measures(self) -> Measures: ...


@dataclass(frozen=True)
class RingSlot:
    """One ring member as a plan sees it: node id and ring column range."""

    node_id: str
    start: int
    end: int


@dataclass(frozen=True)
class PlanSlot:
    """One participant of a plan: its columns and decoder layers, both ``[start, end)``."""

    node_id: str
    start: int
    end: int
    layer_start: int
    layer_end: int


@dataclass(frozen=True)
class JobPlan:
    """The plan of one job: participants in rank (or stage) order and the why."""

    kind: str  # "single" | "tensor" | "pipeline"
    slots: tuple[PlanSlot, ...]
    reason: str
    predicted_tok_s: float | None = None
    alternatives: dict[str, float] = field(default_factory=dict)


def plan_job(
    parallelism: str,
    coordinator: str,
    ring: Sequence[RingSlot],
    shard_columns: int,
    model: ModelCost,
    measures: Measures | None = None,
    tokens_per_round: float = 1.0,
) -> JobPlan:
    """The plan for a job of ``model`` coordinated by ``coordinator`` on ``ring``
    (slots in position order); see the module docstring."""
    ids = [s.node_id for s in ring]
    if coordinator not in ids:
        raise PlanError(f"the coordinator {coordinator} is not in the ring")
    members, links = _on_ring(measures, ids)
    if not any(m.node_id == coordinator for m in members):
        return _unmeasured(parallelism, coordinator, ring, shard_columns, model.n_layers)
    try:
        placement = choose_plan(parallelism, coordinator, members, links, model, tokens_per_round)
    except PlanError:
        if parallelism in ("auto", "single") or _complete(ids, members, links):
            raise  # the plan would not fit even if the rest were measured
        plan = _unmeasured(parallelism, coordinator, ring, shard_columns, model.n_layers)
        return replace(plan, reason=plan.reason.replace(UNMEASURED, PARTLY))
    n_layers = model.n_layers
    slots: tuple[PlanSlot, ...]
    if placement.kind == "single":
        slots = (PlanSlot(coordinator, 0, shard_columns, 0, n_layers),)
    elif placement.kind == "tensor":
        share = dict(zip(placement.members, placement.fractions, strict=True))
        chosen = [i for i in ids if i in share]
        columns = cut(shard_columns, [share[i] for i in chosen])
        slots = tuple(
            PlanSlot(i, a, b, 0, n_layers) for i, (a, b) in zip(chosen, columns, strict=True)
        )
    else:
        slots = _stages(placement.members, list(placement.layers), shard_columns)
    return JobPlan(
        placement.kind, slots, placement.reason, placement.predicted_tok_s,
        dict(placement.alternatives),
    )  # fmt: skip


def _on_ring(measures: Measures | None, ids: list[str]) -> Measures:
    if measures is None:
        return [], []
    members, links = measures
    on = set(ids)
    return (
        [m for m in members if m.node_id in on],
        [k for k in links if k.a in on and k.b in on],
    )


def _unmeasured(
    parallelism: str, coordinator: str, ring: Sequence[RingSlot], columns: int, n_layers: int
) -> JobPlan:
    if parallelism == "single" or len(ring) == 1:
        slot = PlanSlot(coordinator, 0, columns, 0, n_layers)
        return JobPlan("single", (slot,), f"single on 1 member: {_why(parallelism)}")
    if parallelism == "pipeline":
        order = [s for s in ring if s.node_id == coordinator]
        order += [s for s in ring if s.node_id != coordinator]
        order = order[: max(n_layers, 1)]
        counts = largest_remainder([s.end - s.start for s in order], n_layers, minimum=1)
        slots = _stages([s.node_id for s in order], counts, columns)
        return JobPlan("pipeline", slots, f"pipeline on {len(slots)} members: {_why(parallelism)}")
    slots = tuple(PlanSlot(s.node_id, s.start, s.end, 0, n_layers) for s in ring)
    why = _why(parallelism) if parallelism == "tensor" else f"{UNMEASURED}, the ring's columns"
    return JobPlan("tensor", slots, f"tensor on {len(slots)} members: {why}")


def _why(parallelism: str) -> str:
    return f"as the job asks, {UNMEASURED}" if parallelism != "auto" else UNMEASURED


def _complete(ids: list[str], members: list[MemberMeasure], links: list[LinkMeasure]) -> bool:
    """Whether every ring member and every link between them is measured."""
    measured = {m.node_id for m in members}
    pairs = {frozenset((k.a, k.b)) for k in links}
    return set(ids) <= measured and all(
        frozenset((a, b)) in pairs for i, a in enumerate(ids) for b in ids[i + 1 :]
    )


def _stages(ids: Sequence[str], counts: list[int], columns: int) -> tuple[PlanSlot, ...]:
    slots, start = [], 0
    for node, n in zip(ids, counts, strict=True):
        if n > 0:
            slots.append(PlanSlot(node, 0, columns, start, start + n))
            start += n
    return tuple(slots)


def cut(total: int, fractions: Sequence[float]) -> list[tuple[int, int]]:
    """Contiguous ranges of ``[0, total)`` proportional to ``fractions``, none empty."""
    scale = 1_000_000
    counts = largest_remainder([round(f * scale) for f in fractions], total, minimum=1)
    out, start = [], 0
    for c in counts:
        out.append((start, start + c))
        start += c
    return out
