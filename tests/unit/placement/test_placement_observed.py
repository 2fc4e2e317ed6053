"""The planner's inputs from a gossip view: who is listed, how links are combined."""

from __future__ import annotations

import pytest

from reconciler.gossip.linkstats import LinkStat, MeasureReport
from reconciler.gossip.membership import MemberInfo
from reconciler.gossip.messages import NodeMeta
from reconciler.gossip.states import MemberState, display_status
from reconciler.placement.inputs import LinkMeasure, MemberMeasure
from reconciler.placement.observed import plan_inputs

A, B, C, D = ("node-" + x * 16 for x in "abcd")


def member(node_id: str, state: MemberState = MemberState.ALIVE) -> MemberInfo:
    meta = NodeMeta("dev", "10.0.0.1:1")
    return MemberInfo(node_id, "dev", "10.0.0.1:1", state, display_status(state), 1, 0.0, meta)


def report(speed: float | None, free: int | None, **links: LinkStat) -> MeasureReport:
    return MeasureReport(speed, free, {"node-" + k * 16: v for k, v in links.items()})


def test_members_need_speed_and_memory_and_a_ring_state() -> None:
    members = [member(A), member(B), member(C, MemberState.DEAD), member(D)]
    reports = {A: report(2e9, 4 << 30), B: report(None, 1 << 30), C: report(1e9, 1 << 30)}
    listed, links = plan_inputs(members, reports)
    assert listed == [MemberMeasure(A, 2e9, 4 << 30)]
    assert links == []


def test_links_are_the_mean_of_both_ends_or_one_end() -> None:
    members = [member(C), member(A), member(B, MemberState.SUSPECT)]
    reports = {
        A: report(1e9, 1 << 30, b=LinkStat(0.002, 1e8), c=LinkStat(0.010, None)),
        B: report(1e9, 1 << 30, a=LinkStat(0.004, 3e8)),
        C: report(1e9, 1 << 30, b=LinkStat(0.001, 5e7)),
    }
    listed, links = plan_inputs(members, reports)
    assert [m.node_id for m in listed] == [A, B, C]
    # A-C has a round trip but no throughput from either end: left out
    assert links[0] == LinkMeasure(A, B, pytest.approx(0.003), pytest.approx(2e8))  # type: ignore[arg-type]
    assert links[1:] == [LinkMeasure(B, C, 0.001, 5e7)]
