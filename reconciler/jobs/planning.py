"""The coordinator's choice of a job's plan: the model's cost (read from its file), the
pool's measurements (if the agent has any) and the ring, handed to the pure planner.

A model the coordinator cannot read is planned as today's tensor job over the ring: the
load then reports why the model is unusable. A plan that cannot fit fails the job with
reason ``NoPlan`` before anything is offered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from reconciler.inference.kernels import default_activations
from reconciler.jobs.errors import JobFailed, Reason
from reconciler.jobs.limits import cache_len
from reconciler.jobs.plans import resolve_wire, ring_slots, tensor_sizes
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
    cost = await asyncio.to_thread(_cost, request, resolver, cache)
    parallelism = request.parallelism if cost is not UNKNOWN_MODEL else "auto"
    ring = request.ring
    try:
        plan = plan_job(
            parallelism, self_id, ring_slots(ring), ring.shard_columns, cost, _measures(source)
        )
    except PlanError as exc:
        raise JobFailed(Reason.NO_PLAN, str(exc)) from exc
    if self_id not in {s.node_id for s in plan.slots}:  # it holds the prompt and the sampler
        raise JobFailed(Reason.NO_PLAN, f"the {plan.kind} plan leaves out its coordinator")
    return plan


def _cost(
    request: JobRequest, resolver: Callable[[str], str | Path], cache: ShardCache
) -> ModelCost:
    try:
        path = Path(request.model_path or resolver(request.model_ref))
        config = cache.info(path).config
        sizes = tensor_sizes(path)
    except Exception as exc:  # the resolver's or the reader's errors: the load reports them
        log.debug("job %s: no model cost: %s", request.job_id, exc)
        return UNKNOWN_MODEL
    positions = cache_len(len(request.prompt_ids), request.sampling.max_tokens, config)
    wire = resolve_wire(request.wire, cache.activations or default_activations())
    return model_cost(config, sizes, positions, wire)


def _measures(source: MeasureSource | None) -> Measures | None:
    if source is None:
        return None
    try:
        return source.measures()
    except Exception:  # a measuring fault must not fail the job: plan as unmeasured
        log.exception("the pool's measurements could not be read")
        return None
