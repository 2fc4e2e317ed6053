"""Pipeline stage sizes: whole layers within memory, fastest-first or by speed."""

from __future__ import annotations

from reconciler.placement import LinkMeasure, MemberMeasure, ModelCost, choose_plan
from reconciler.placement.stages import by_speed, fastest_first, layer_caps, layer_splits

GIB = 2**30
MODEL = ModelCost(n_layers=30, layer_bytes=1000, head_bytes=5000, kv_bytes_per_layer=0,
                  activation_bytes=64)  # fmt: skip


def member(name: str, speed: float, memory: int = GIB) -> MemberMeasure:
    return MemberMeasure(name, speed, memory)


def test_caps_count_whole_layers_and_stage_0_keeps_the_head() -> None:
    stages = [member("a", 1.0, 5000 + 3500), member("b", 1.0, 2999)]
    assert layer_caps(stages, MODEL) == [3, 2]


def test_by_speed_gives_every_stage_its_share_within_memory() -> None:
    fast, slow = member("a", 2e9), member("b", 1e9)
    assert by_speed([fast, slow], [30, 30], 30) == [20, 10]
    assert by_speed([fast, slow], [12, 30], 30) == [12, 18]  # a is full: b takes the rest
    assert by_speed([fast, slow, member("c", 1e9)], [30, 30, 30], 2) is None  # 3 stages, 2 layers


def test_fastest_first_keeps_one_layer_on_the_coordinator() -> None:
    assert fastest_first([member("a", 1e9), member("b", 4e9)], [30, 30], 30) == [1, 29]
    assert fastest_first([member("a", 4e9), member("b", 1e9)], [30, 30], 30) == [30, 0]


def test_splits_that_cannot_fit_are_not_offered() -> None:
    assert layer_splits([member("a", 1e9, 4000), member("b", 1e9)], MODEL) == []  # no head room
    tight = [member("a", 1e9, 5000 + 10_000), member("b", 1e9, 10_000)]
    assert layer_splits(tight, MODEL) == []  # 20 layers of room for 30


def test_an_explicit_pipeline_on_members_that_each_fit_the_model_has_two_stages() -> None:
    members = [member("a", 1e9), member("b", 1e9)]
    link = [LinkMeasure("a", "b", 0.001, 1.25e8)]
    plan = choose_plan("pipeline", "a", members, link, MODEL)
    assert plan.members == ("a", "b") and plan.layers == (15, 15)
