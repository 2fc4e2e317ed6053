"""The coordinator's choice of a job's plan: the model's cost (read from its file), the
pool's measurements (if the agent has any) and the ring, handed to the pure planner.

A model the coordinator cannot read is planned as today's tensor job over the ring: the
load then reports why the model is unusable. A plan that cannot fit fails the job with
reason ``NoPlan`` before anything is offered: the planner caps shares by the file's
bytes, then each measured member's share is checked in the smallest layout its kernels
can hold it in (``plans.held_sizes``), naming the figures when it does not fit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from reconciler.inference.kernels import default_activations
from reconciler.jobs.errors import JobFailed, Reason
from reconciler.jobs.limits import cache_len
from reconciler.jobs.plans import (
    held_sizes,
    memory_problem,
    resolve_wire,
    ring_slots,
    slot_bytes,
    tensor_records,
)
from reconciler.jobs.results import JobRequest
from reconciler.jobs.shards import ShardCache
from reconciler.placement.inputs import ModelCost
from reconciler.placement.modelcost import model_cost
from reconciler.placement.planner import PlanError
from reconciler.placement.ringplan import JobPlan, Measures, MeasureSource, plan_job

log = logging.getLogger("meshnet.jobs")
UNKNOWN_MODEL = ModelCost(0, 0, 0, 0, 0)


async def choose(
    self_id: str,
    request: JobRequest,
    resolver: Callable[[str], str | Path],
    cache: ShardCache,
    source: MeasureSource | None,
) -> JobPlan:
    """The plan of ``request`` coordinated by ``self_id``; JobFailed(NoPlan) when none fits."""
    costs = await asyncio.to_thread(_costs, request, resolver, cache)
    cost = costs.file
    parallelism = request.parallelism if cost is not UNKNOWN_MODEL else "auto"
    ring = request.ring
    measures = _measures(source)
    try:
        plan = plan_job(parallelism, self_id, ring_slots(ring), ring.shard_columns, cost, measures)
    except PlanError as exc:
        raise JobFailed(Reason.NO_PLAN, str(exc)) from exc
    if self_id not in {s.node_id for s in plan.slots}:  # it holds the prompt and the sampler
        raise JobFailed(Reason.NO_PLAN, f"the {plan.kind} plan leaves out its coordinator")
    problem = _memory_problem(plan, costs, measures, ring.shard_columns)
    if problem is not None:
        raise JobFailed(Reason.NO_PLAN, problem)
    return plan


@dataclass(frozen=True)
class Costs:
    """A model's cost in the file's bytes (the planner's unit), and in the smallest
    layout the kernels can hold it in (None when the model could not be read)."""

    file: ModelCost
    held: ModelCost | None = None
    layout: str = ""


def _costs(request: JobRequest, resolver: Callable[[str], str | Path], cache: ShardCache) -> Costs:
    try:
        path = Path(request.model_path or resolver(request.model_ref))
        config = cache.info(path).config
        records = tensor_records(path)
    except Exception as exc:  # the resolver's or the reader's errors: the load reports them
        log.debug("job %s: no model cost: %s", request.job_id, exc)
        return Costs(UNKNOWN_MODEL)
    positions = cache_len(len(request.prompt_ids), request.sampling.max_tokens, config)
    wire = resolve_wire(request.wire, cache.activations or default_activations())
    file = model_cost(config, {r.name: r.file_bytes for r in records}, positions, wire)
    helds = {
        layout: model_cost(config, held_sizes(records, layout), positions, wire)
        for layout in cache.layouts(config)
    }
    layout = min(helds, key=lambda name: helds[name].total_bytes)
    return Costs(file, helds[layout], layout)


def _memory_problem(
    plan: JobPlan, costs: Costs, measures: Measures | None, shard_columns: int
) -> str | None:
    """Why a measured member of ``plan`` cannot hold its share even in the smallest
    layout, naming the figures; None when each can (or nothing is measured)."""
    if costs.held is None or measures is None:
        return None
    free = {m.node_id: m.free_memory for m in measures[0]}
    for rank, slot in enumerate(plan.slots):
        if slot.node_id not in free:
            continue
        need = slot_bytes(plan.kind, plan.slots, rank, shard_columns, costs.held)
        stored = slot_bytes(plan.kind, plan.slots, rank, shard_columns, costs.file)
        problem = memory_problem(need, free[slot.node_id], costs.layout, stored)
        if problem is not None:
            return f"{slot.node_id}: {problem}"
    return None


def _measures(source: MeasureSource | None) -> Measures | None:
    if source is None:
        return None
    try:
        return source.measures()
    except Exception:  # a measuring fault must not fail the job: plan as unmeasured
        log.exception("the pool's measurements could not be read")
        return None
