"""Plans derived from the ring: who takes part, with which columns and layers, and why."""

from __future__ import annotations

import itertools

import pytest

from reconciler.placement import LinkMeasure, MemberMeasure, ModelCost, PlanError
from reconciler.placement.costs import EXCHANGE_OVERHEAD_S, pipeline_seconds
from reconciler.placement.ringplan import Measures, RingSlot, cut, largest_remainder, plan_job

GIB = 2**30
COLUMNS = 8192
# the ring: b holds more columns than a (memory weighting); c is third
RING = [RingSlot("b", 0, 4096), RingSlot("a", 4096, 6144), RingSlot("c", 6144, 8192)]
MODEL = ModelCost(
    n_layers=30,
    layer_bytes=2_800_000,
    head_bytes=30_000_000,
    kv_bytes_per_layer=200_000,
    activation_bytes=576 * 4,
)


def member(name: str, speed: float = 10e9, memory: int = 8 * GIB) -> MemberMeasure:
    return MemberMeasure(name, speed, memory)


def links(rtt_ms: float, *names: str) -> list[LinkMeasure]:
    return [
        LinkMeasure(x, y, rtt_ms / 1000.0, 10e9 / 8.0)
        for i, x in enumerate(names)
        for y in names[i + 1 :]
    ]


def test_unmeasured_auto_keeps_today_s_tensor_plan_over_the_ring() -> None:
    plan = plan_job("auto", "a", RING, COLUMNS, MODEL)
    assert plan.kind == "tensor" and plan.predicted_tok_s is None
    assert [(s.node_id, s.start, s.end) for s in plan.slots] == [
        ("b", 0, 4096),
        ("a", 4096, 6144),
        ("c", 6144, 8192),
    ]
    assert all((s.layer_start, s.layer_end) == (0, 30) for s in plan.slots)
    assert "no measurements" in plan.reason


def test_unmeasured_single_is_the_coordinator_with_everything() -> None:
    plan = plan_job("single", "c", RING, COLUMNS, MODEL)
    assert plan.kind == "single"
    assert [(s.node_id, s.start, s.end, s.layer_start, s.layer_end) for s in plan.slots] == [
        ("c", 0, COLUMNS, 0, 30)
    ]
    assert "as the job asks" in plan.reason


def test_unmeasured_pipeline_starts_at_the_coordinator_and_follows_the_ring_widths() -> None:
    plan = plan_job("pipeline", "a", RING, COLUMNS, MODEL)
    assert plan.kind == "pipeline"
    assert [s.node_id for s in plan.slots] == ["a", "b", "c"]
    assert [(s.layer_start, s.layer_end) for s in plan.slots] == [(0, 8), (8, 23), (23, 30)]
    assert all((s.start, s.end) == (0, COLUMNS) for s in plan.slots)


def test_more_stages_than_layers_drops_the_extra_members() -> None:
    tiny = ModelCost(2, 1000, 1000, 10, 64)
    plan = plan_job("pipeline", "c", RING, COLUMNS, tiny)
    assert [(s.node_id, s.layer_start, s.layer_end) for s in plan.slots] == [
        ("c", 0, 1),
        ("b", 1, 2),
    ]


def test_measured_fast_links_recut_the_columns_by_speed_in_ring_order() -> None:
    measures = ([member("a"), member("b", speed=5e9), member("c")], links(0.05, "a", "b", "c"))
    plan = plan_job("tensor", "a", RING, COLUMNS, MODEL, measures)
    assert plan.kind == "tensor" and plan.predicted_tok_s
    # ring position order b, a, c; the half-speed b gets half of a fast member's columns
    assert [(s.node_id, s.start, s.end) for s in plan.slots] == [
        ("b", 0, 1638),
        ("a", 1638, 4915),
        ("c", 4915, 8192),
    ]


def test_measured_slow_link_and_a_model_that_fits_run_single() -> None:
    measures = ([member("a"), member("b")], links(5.0, "a", "b"))
    plan = plan_job("auto", "a", RING, COLUMNS, MODEL, measures)
    assert plan.kind == "single" and [s.node_id for s in plan.slots] == ["a"]
    assert plan.predicted_tok_s and "tensor" in plan.alternatives
    assert plan.reason.startswith("single on 1 member")


def test_measured_pipeline_takes_the_placement_s_layer_counts() -> None:
    small = 2_800_000 * 12 + 200_000 * 12 + 30_000_000  # the coordinator fits 12 layers + head
    measures = ([member("c", memory=small), member("a", speed=5e9)], links(1.0, "a", "c"))
    plan = plan_job("pipeline", "c", RING, COLUMNS, MODEL, measures)
    assert plan.kind == "pipeline" and plan.slots[0].node_id == "c"
    layers = [(s.layer_start, s.layer_end) for s in plan.slots]
    assert layers[0][0] == 0 and layers[-1][1] == 30
    assert all(a[1] == b[0] for a, b in itertools.pairwise(layers))


def test_measures_of_nodes_off_the_ring_are_ignored() -> None:
    measures = ([member("a"), member("zed", speed=1e12)], links(0.01, "a", "zed"))
    plan = plan_job("auto", "a", RING, COLUMNS, MODEL, measures)
    assert {s.node_id for s in plan.slots} <= {"a", "b", "c"}


def test_a_coordinator_off_the_ring_and_a_plan_that_cannot_fit_are_errors() -> None:
    with pytest.raises(PlanError, match="not in the ring"):
        plan_job("auto", "zed", RING, COLUMNS, MODEL)
    huge = ModelCost(30, GIB, GIB, 0, 64)
    with pytest.raises(PlanError, match="no single plan fits"):
        plan_job("single", "a", RING, COLUMNS, huge, ([member("a")], []))


def test_cut_tiles_the_columns_and_leaves_no_member_empty() -> None:
    ranges = cut(COLUMNS, [0.99999, 0.000005, 0.000005])
    assert ranges[0][0] == 0 and ranges[-1][1] == COLUMNS
    assert all(b > a for a, b in ranges)
    assert all(x[1] == y[0] for x, y in itertools.pairwise(ranges))
    assert largest_remainder([0, 0], 5) == [3, 2]
    assert largest_remainder([1, 2, 1], 8) == [2, 4, 2]


def test_the_coordinator_is_always_a_stage_even_when_others_are_faster() -> None:
    """A faster member could hold every layer; the coordinator still runs one (it holds
    the prompt and streams the tokens), so it is a participant of the plan."""
    measures = ([member("a", speed=1e9), member("b", speed=10e9)], links(20.0, "a", "b"))
    plan = plan_job("pipeline", "a", RING, COLUMNS, MODEL, measures)
    assert [(s.node_id, s.layer_start, s.layer_end) for s in plan.slots] == [
        ("a", 0, 1),
        ("b", 1, 30),
    ]


def test_a_coordinator_that_cannot_hold_a_layer_and_the_head_has_no_pipeline() -> None:
    head_only = MODEL.head_bytes + MODEL.layer_bytes  # no room for the layer's KV cache
    measures = ([member("a", memory=head_only), member("b")], links(1.0, "a", "b"))
    ring = [RingSlot("a", 0, 4096), RingSlot("b", 4096, 8192)]  # all measured
    with pytest.raises(PlanError, match="no pipeline plan fits"):
        plan_job("pipeline", "a", ring, COLUMNS, MODEL, measures)


def test_the_lm_head_is_charged_to_the_last_stage_that_runs_it() -> None:
    head_heavy = ModelCost(2, 1_000, 1_000_000, 0, 64)
    fast, slow = member("f", speed=1e9), member("s", speed=1e6)
    hop = links(0.0, "f", "s")
    slow_last = pipeline_seconds(head_heavy, [fast, slow], [1, 1], hop)
    slow_first = pipeline_seconds(head_heavy, [slow, fast], [1, 1], hop)
    overhead = 2 * EXCHANGE_OVERHEAD_S  # two hops around the cycle of stages
    assert slow_last == pytest.approx(1.0 + 0.001 + 1e-6 + overhead, rel=1e-3)  # head: 1 s
    assert slow_first < slow_last / 100


def test_an_explicit_split_waits_for_nobody_s_measurements() -> None:
    """Links not measured yet: an explicit tensor or pipeline job still runs, split by the
    ring as before measurements, and says why."""
    only_a: Measures = ([member("a"), member("b")], [])
    for kind in ("tensor", "pipeline"):
        plan = plan_job(kind, "a", RING, COLUMNS, MODEL, only_a)
        assert plan.kind == kind and len(plan.slots) == 3 and plan.predicted_tok_s is None
        assert "not every member and link of the ring is measured yet" in plan.reason
