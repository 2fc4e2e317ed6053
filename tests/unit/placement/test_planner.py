"""The planner picks the plan the measurements favour, and says why."""

from __future__ import annotations

import pytest

from reconciler.placement import LinkMeasure, MemberMeasure, ModelCost, PlanError, choose_plan
from reconciler.placement.costs import tensor_seconds
from reconciler.placement.planner import speed_fractions

GIB = 2**30
# SmolLM2-135M-like: 30 layers of 2.8 MB, a 30 MB head, 576-wide activations in fp32.
DEMO = ModelCost(
    n_layers=30,
    layer_bytes=2_800_000,
    head_bytes=30_000_000,
    kv_bytes_per_layer=200_000,
    activation_bytes=576 * 4,
)
SPEED = 10e9  # weight bytes per second


def member(name: str, speed: float = SPEED, memory: int = 8 * GIB) -> MemberMeasure:
    return MemberMeasure(name, speed, memory)


def link(a: str, b: str, rtt_ms: float, gbit: float = 1.0) -> LinkMeasure:
    return LinkMeasure(a, b, rtt_ms / 1000.0, gbit * 1e9 / 8.0)


def big_model(gib: float) -> ModelCost:
    layers = 32
    return ModelCost(
        layers, int(gib * GIB / (layers + 2)), int(2 * gib * GIB / (layers + 2)), 0, 4096 * 4
    )


def test_fast_link_and_equal_members_choose_tensor() -> None:
    """A model whose compute dwarfs the per-round costs (4 GiB at 10 GB/s: 0.4 s)."""
    model = big_model(4.0)
    p = choose_plan("auto", "a", [member("a"), member("b")], [link("a", "b", 0.05, 10.0)], model)
    assert p.kind == "tensor"
    assert p.members == ("a", "b")
    assert p.predicted_tok_s > p.alternatives["single"]
    assert "beats" in p.reason


def test_five_ms_link_keeps_a_model_that_fits_on_the_coordinator() -> None:
    p = choose_plan("auto", "a", [member("a"), member("b")], [link("a", "b", 5.0)], DEMO)
    assert p.kind == "single"
    assert p.members == ("a",)
    # tensor pays 61 rounds of 2.5 ms: far slower, and the reason says so
    assert p.alternatives["tensor"] < p.predicted_tok_s / 5
    assert "tensor" in p.reason


def test_a_model_too_big_for_any_member_still_runs_on_the_faster_split() -> None:
    members = [member("a", memory=3 * GIB), member("b", memory=3 * GIB)]
    model = big_model(4.0)
    slow = choose_plan("auto", "a", members, [link("a", "b", 20.0)], model)
    fast = choose_plan("auto", "a", members, [link("a", "b", 0.05, 10.0)], model)
    assert "single" not in slow.alternatives
    assert slow.kind == "pipeline"  # 2 hops beat 65 rounds at 20 ms
    assert sum(slow.layers) == model.n_layers
    assert fast.kind == "tensor"  # both members read half the weights at once


def test_pipeline_fills_the_fastest_member_first() -> None:
    members = [member("a", SPEED, 3 * GIB), member("b", 2 * SPEED, 3 * GIB)]
    p = choose_plan("pipeline", "a", members, [link("a", "b", 1.0)], big_model(4.0))
    assert p.members[0] == "a"  # the coordinator is stage 0
    layers = dict(zip(p.members, p.layers, strict=True))
    assert layers["b"] > layers["a"]


def test_a_member_at_half_speed_gets_a_third_and_the_job_is_faster() -> None:
    members = [member("a"), member("b", SPEED / 2)]
    links = [link("a", "b", 0.05, 10.0)]
    p = choose_plan("tensor", "a", members, links, DEMO)
    assert p.fractions == pytest.approx((2 / 3, 1 / 3))
    even = tensor_seconds(DEMO, members, [0.5, 0.5], links)
    assert 1.0 / p.predicted_tok_s < even


def test_shares_are_capped_by_memory_and_the_rest_goes_to_the_others() -> None:
    members = [member("a", SPEED, 10 * GIB), member("b", 4 * SPEED, 1 * GIB)]
    fractions = speed_fractions(members, 4 * GIB)
    assert fractions == pytest.approx([0.75, 0.25])
    assert speed_fractions(members, 12 * GIB) is None


def test_forced_plans_are_kept_or_refused_with_the_numbers() -> None:
    members = [member("a", memory=1 * GIB), member("b", memory=8 * GIB)]
    links = [link("a", "b", 5.0)]
    forced = choose_plan("tensor", "a", members, links, big_model(2.0))
    assert forced.kind == "tensor"
    assert "as the job asks" in forced.reason
    with pytest.raises(PlanError, match=r"no single plan fits: the model needs 2\.00 GiB"):
        choose_plan("single", "a", members, links, big_model(2.0))


def test_nothing_fits() -> None:
    with pytest.raises(PlanError, match="no plan fits"):
        choose_plan("auto", "a", [member("a", memory=GIB)], [], big_model(2.0))


def test_members_without_a_measured_link_are_left_out() -> None:
    members = [member("a"), member("b"), member("c")]
    p = choose_plan("tensor", "a", members, [link("a", "b", 0.05, 10.0)], DEMO)
    assert p.members == ("a", "b")


def test_a_lone_plan_says_why_no_pooled_plan_was_weighed() -> None:
    """One member, or no measured link yet (the demo's job right after its agents start)."""
    alone = choose_plan("auto", "a", [member("a")], [], DEMO)
    assert "the only member with measurements" in alone.reason
    unlinked = choose_plan("auto", "a", [member("a"), member("b")], [], DEMO)
    assert unlinked.kind == "single" and "no link to another member measured yet" in unlinked.reason


def test_speculative_rounds_scale_the_prediction() -> None:
    members, links = [member("a"), member("b")], [link("a", "b", 5.0)]
    one = choose_plan("tensor", "a", members, links, DEMO)
    three = choose_plan("tensor", "a", members, links, DEMO, tokens_per_round=3.0)
    assert three.predicted_tok_s == pytest.approx(3 * one.predicted_tok_s)


def test_unknown_parallelism_and_unmeasured_coordinator_are_errors() -> None:
    with pytest.raises(PlanError, match="unknown parallelism 'fast'"):
        choose_plan("fast", "a", [member("a")], [], DEMO)
    with pytest.raises(PlanError, match="coordinator z has no measurements"):
        choose_plan("auto", "z", [member("a")], [], DEMO)


def test_pooling_must_pay_by_a_margin() -> None:
    """Predicted only a little faster than the coordinator alone, a pool is not worth its
    risks: ``auto`` stays single and says why; asked for, tensor still runs."""
    model = big_model(1.2)  # 1.2 GiB: 0.13 s of compute, ~10% gained by two members
    members, links = [member("a"), member("b")], [link("a", "b", 0.01, 100.0)]
    asked = choose_plan("tensor", "a", members, links, model)
    single = choose_plan("single", "a", members, links, model)
    assert single.predicted_tok_s < asked.predicted_tok_s < 1.15 * single.predicted_tok_s
    p = choose_plan("auto", "a", members, links, model)
    assert p.kind == "single" and "would not pay" in p.reason


def test_a_small_model_pays_more_than_its_weight_bytes() -> None:
    """A small model's decode is mostly the layers' fixed cost (attention, norms, kernel
    calls), not its weight bytes: the prediction is below bytes over speed, and a member
    ten times faster at matmuls is not predicted ten times faster."""
    links = [link("a", "b", 0.1)]
    slow = choose_plan("single", "a", [member("a"), member("b")], links, DEMO)
    fast = choose_plan("single", "a", [member("a", 10 * SPEED), member("b")], links, DEMO)
    assert slow.predicted_tok_s < SPEED / DEMO.total_bytes
    assert fast.predicted_tok_s < 5 * slow.predicted_tok_s
