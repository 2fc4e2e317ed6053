"""Layer counts for the stages of a pipeline (pure): who holds how many whole layers.

Every stage holds one layer at least (the coordinator, stage 0, also holds the head) and
no more than its free memory allows. Two splits are tried, the planner keeps the faster:

- ``fastest_first``: the coordinator keeps one layer, the fastest members take as many
  as fit (total compute is least when the fastest member does most of it);
- ``by_speed``: layers in proportion to measured speed, capped by memory, so every
  member given to the pipeline runs a share of it.
"""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.placement.inputs import MemberMeasure, ModelCost


def largest_remainder(weights: Sequence[int], total: int, minimum: int = 0) -> list[int]:
    """Integer counts summing to ``total``, proportional to ``weights``, each at least
    ``minimum`` when ``total`` allows (taken from the largest counts)."""
    if not sum(weights):
        weights = [1] * len(weights)
    denom = sum(weights)
    exact = [w * total for w in weights]
    counts = [e // denom for e in exact]
    order = sorted(range(len(counts)), key=lambda i: (-(exact[i] % denom), i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    for i in range(len(counts)):
        while counts[i] < minimum:
            donor = max(range(len(counts)), key=lambda j: counts[j])
            if counts[donor] <= minimum:
                return counts
            counts[donor] -= 1
            counts[i] += 1
    return counts


def layer_caps(stages: Sequence[MemberMeasure], model: ModelCost) -> list[int]:
    """Whole layers (weights and KV cache) each stage can hold; stage 0 keeps the head."""
    per_layer = model.layer_bytes + model.kv_bytes_per_layer
    caps = []
    for i, m in enumerate(stages):
        room = m.free_memory - (model.head_bytes if i == 0 else 0)
        caps.append(max(room, 0) // per_layer if per_layer else model.n_layers)
    return caps


def layer_splits(stages: Sequence[MemberMeasure], model: ModelCost) -> list[list[int]]:
    """The feasible splits (layer counts in ``stages`` order; a member may get none)."""
    caps = layer_caps(stages, model)
    if model.n_layers < 1 or not caps or caps[0] < 1 or sum(caps) < model.n_layers:
        return []
    found = [fastest_first(stages, caps, model.n_layers)]
    proportional = by_speed(stages, caps, model.n_layers)
    if proportional is not None and proportional not in found:
        found.append(proportional)
    return found


def fastest_first(stages: Sequence[MemberMeasure], caps: list[int], n_layers: int) -> list[int]:
    """One layer on stage 0, then as many as fit on the fastest members first."""
    counts = [1] + [0] * (len(stages) - 1)
    left = n_layers - 1
    for i in sorted(range(len(stages)), key=lambda i: -stages[i].weight_bytes_per_s):
        take = min(left, caps[i] - counts[i])
        counts[i] += take
        left -= take
    return counts


def by_speed(stages: Sequence[MemberMeasure], caps: list[int], n_layers: int) -> list[int] | None:
    """Every stage one layer at least, the rest in proportion to speed within memory;
    None when the stages outnumber the layers or one cannot hold a layer."""
    if n_layers < len(stages) or min(caps) < 1:
        return None
    counts = [1] * len(stages)
    left = n_layers - len(stages)
    while left:
        free = [i for i in range(len(stages)) if counts[i] < caps[i]]
        speeds = [round(stages[i].weight_bytes_per_s) for i in free]
        extra = largest_remainder(speeds, left)
        for i, e in zip(free, extra, strict=True):
            take = min(e, caps[i] - counts[i])
            counts[i] += take
            left -= take
    return counts
