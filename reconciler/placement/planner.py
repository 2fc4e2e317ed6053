"""Choose a job's plan from measurements: the fastest feasible plan, or the one asked for.

Candidates, all including the coordinator (it holds the prompt and the sampler):

- ``single``: the coordinator alone, when the model and its KV cache fit in its memory.
- ``tensor``: every subset of members that includes the coordinator (unmeasured links
  exclude a subset), with shares proportional to measured speed and capped by memory.
- ``pipeline``: every subset of two or more members that includes the coordinator
  (stage 0, which also holds the embedding), with whole layers split fastest-first or
  by speed, within memory (``stages.py``); the faster split wins.

``auto`` takes the highest predicted tokens/s; a model that fits on no single member
still runs through the faster of ``tensor`` and ``pipeline``. The placement says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations

from reconciler.placement.costs import (
    link_between,
    pipeline_seconds,
    single_seconds,
    tensor_seconds,
)
from reconciler.placement.inputs import LinkMeasure, MemberMeasure, ModelCost
from reconciler.placement.stages import layer_splits

PARALLELISMS = ("auto", "tensor", "pipeline", "single")
# ``auto`` pools only when that is predicted this much faster than the coordinator alone:
# the self-tests of two members starting together disturb each other, and a plan across
# devices has costs the model leaves out (a member's other work, a busy link).
POOLING_MARGIN = 1.15
MAX_SUBSET_MEMBERS = 8  # beyond this, tensor subsets are the whole pool only


class PlanError(ValueError):
    """No plan of the requested kind can run this model on these members."""


@dataclass(frozen=True)
class Placement:
    """The chosen plan: members in rank/stage order, their shares, the prediction."""

    kind: str  # "single" | "tensor" | "pipeline"
    members: tuple[str, ...]
    fractions: tuple[float, ...] = ()  # tensor: share of every matrix per member
    layers: tuple[int, ...] = ()  # pipeline: decoder layers per stage
    predicted_tok_s: float = 0.0
    reason: str = ""
    alternatives: dict[str, float] = field(default_factory=dict)  # kind -> best tok/s


def choose_plan(
    parallelism: str,
    coordinator: str,
    members: Sequence[MemberMeasure],
    links: Sequence[LinkMeasure],
    model: ModelCost,
    tokens_per_round: float = 1.0,
) -> Placement:
    """The placement for a job (see the module docstring)."""
    if parallelism not in PARALLELISMS:
        raise PlanError(f"unknown parallelism {parallelism!r} (one of {', '.join(PARALLELISMS)})")
    by_id = {m.node_id: m for m in members}
    if coordinator not in by_id:
        raise PlanError(f"the coordinator {coordinator} has no measurements")
    ordered = [by_id[coordinator], *(m for m in members if m.node_id != coordinator)]
    builders = {"single": _single, "tensor": _tensor, "pipeline": _pipeline}
    kinds = list(builders) if parallelism == "auto" else [parallelism]
    found: list[Placement] = []
    for kind in kinds:
        placement = builders[kind](ordered, links, model, tokens_per_round)
        if placement is not None:
            found.append(placement)
    if not found:
        need = _gib(model.total_bytes + model.kv_bytes)
        have = _gib(sum(m.free_memory for m in members))
        what = "no plan" if parallelism == "auto" else f"no {parallelism} plan"
        raise PlanError(
            f"{what} fits: the model needs {need} GiB, the members have {have} GiB free"
        )
    best = max(found, key=lambda p: p.predicted_tok_s)
    alone = next((p for p in found if p.kind == "single"), None)
    if alone is not None and best.predicted_tok_s < POOLING_MARGIN * alone.predicted_tok_s:
        best = alone  # pooling would not pay enough to be worth its risks
    alternatives = {p.kind: round(p.predicted_tok_s, 2) for p in found}
    return Placement(
        best.kind,
        best.members,
        best.fractions,
        best.layers,
        best.predicted_tok_s,
        _reason(parallelism, best, alternatives, _why_alone(ordered, links)),
        alternatives,
    )


def _single(
    ordered: list[MemberMeasure], links: Sequence[LinkMeasure], model: ModelCost, k: float
) -> Placement | None:
    coordinator = ordered[0]
    if model.total_bytes + model.kv_bytes > coordinator.free_memory:
        return None
    rate = k / single_seconds(model, coordinator)
    return Placement("single", (coordinator.node_id,), (1.0,), (model.n_layers,), rate)


def _tensor(
    ordered: list[MemberMeasure], links: Sequence[LinkMeasure], model: ModelCost, k: float
) -> Placement | None:
    best: Placement | None = None
    for subset in _subsets(ordered):
        if not _measured(subset, links):
            continue
        fractions = speed_fractions(subset, model.total_bytes + model.kv_bytes)
        if fractions is None:
            continue
        rate = k / tensor_seconds(model, subset, fractions, links)
        if best is None or rate > best.predicted_tok_s:
            ids = tuple(m.node_id for m in subset)
            best = Placement("tensor", ids, tuple(fractions), (), rate)
    return best


def _pipeline(
    ordered: list[MemberMeasure], links: Sequence[LinkMeasure], model: ModelCost, k: float
) -> Placement | None:
    best: Placement | None = None
    for subset in _subsets(ordered):
        if not _measured(subset, links):
            continue
        for counts in layer_splits(subset, model):
            stages = [m for m, n in zip(subset, counts, strict=True) if n]
            if len(stages) < 2:  # one stage is the single plan
                continue
            layers = [n for n in counts if n]
            rate = k / pipeline_seconds(model, stages, layers, links)
            if best is None or rate > best.predicted_tok_s:
                ids = tuple(m.node_id for m in stages)
                best = Placement("pipeline", ids, (), tuple(layers), rate)
    return best


def speed_fractions(members: Sequence[MemberMeasure], need: int) -> list[float] | None:
    """Shares proportional to speed, capped by each member's memory (water-filling);
    None when the members together cannot hold ``need`` bytes."""
    caps = [m.free_memory / need if need else 1.0 for m in members]
    if sum(caps) < 1.0:
        return None
    fractions = [0.0] * len(members)
    free = list(range(len(members)))
    left = 1.0
    while free:
        speed = sum(members[i].weight_bytes_per_s for i in free)
        want = {i: left * members[i].weight_bytes_per_s / speed for i in free}
        capped = [i for i in free if want[i] > caps[i]]
        if not capped:
            for i in free:
                fractions[i] = want[i]
            break
        for i in capped:
            fractions[i] = caps[i]
            left -= caps[i]
            free.remove(i)
    return fractions


def _subsets(ordered: list[MemberMeasure]) -> list[list[MemberMeasure]]:
    coordinator, others = ordered[0], ordered[1:]
    if len(ordered) > MAX_SUBSET_MEMBERS:
        return [ordered]
    return [
        [coordinator, *combo]
        for size in range(1, len(others) + 1)
        for combo in combinations(others, size)
    ]


def _measured(members: Sequence[MemberMeasure], links: Sequence[LinkMeasure]) -> bool:
    ids = [m.node_id for m in members]
    return all(link_between(links, a, b) for i, a in enumerate(ids) for b in ids[i + 1 :])


def _why_alone(ordered: list[MemberMeasure], links: Sequence[LinkMeasure]) -> str:
    """Why a pooled plan may be missing: one member, no measured link, or no fit."""
    if len(ordered) == 1:
        return "the only member with measurements"
    if not any(_measured([ordered[0], other], links) for other in ordered[1:]):
        return "no link to another member measured yet"
    return "the only plan that fits"


def _reason(parallelism: str, best: Placement, alternatives: dict[str, float], alone: str) -> str:
    where = f"{best.kind} on {len(best.members)} member{'s' if len(best.members) > 1 else ''}"
    if parallelism != "auto":
        return f"{where}, as the job asks: predicted {best.predicted_tok_s:.1f} tok/s"
    others = ", ".join(f"{k} {v:.1f}" for k, v in alternatives.items() if k != best.kind)
    if not others:
        return f"{where}: {alone}, predicted {best.predicted_tok_s:.1f} tok/s"
    if best.kind == "single" and max(alternatives.values()) > best.predicted_tok_s:
        return (
            f"{where}: predicted {best.predicted_tok_s:.1f} tok/s; pooling would not pay "
            f"{POOLING_MARGIN:.2f}x that ({others} tok/s)"
        )
    return f"{where}: predicted {best.predicted_tok_s:.1f} tok/s beats {others} tok/s"


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f}"
