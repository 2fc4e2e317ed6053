"""The planner's inputs from a node's gossip view (pure).

Every node holds the same statements (each member states its own kernel speed, free
memory and links), so every node derives the same inputs:

- a member is listed once it has stated both a kernel speed and its free memory, and
  only while it is in the ring (ALIVE or SUSPECT); members still measuring are left out;
- a link between two listed members is the mean of what its two ends state (one end's
  figures when only one has measured it); a link without both a round trip and a
  throughput is left out (the planner then leaves out plans that need it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import combinations

from reconciler.gossip.linkstats import LinkStat, MeasureReport
from reconciler.gossip.membership import MemberInfo
from reconciler.gossip.states import IN_RING
from reconciler.placement.inputs import LinkMeasure, MemberMeasure


def plan_inputs(
    members: Iterable[MemberInfo], reports: Mapping[str, MeasureReport]
) -> tuple[list[MemberMeasure], list[LinkMeasure]]:
    """``(members, links)`` for ``choose_plan``, both sorted by node ID."""
    listed: list[MemberMeasure] = []
    for m in sorted(members, key=lambda m: m.node_id):
        report = reports.get(m.node_id)
        if m.state not in IN_RING or report is None:
            continue
        if report.speed_bytes_per_s and report.free_memory:
            listed.append(MemberMeasure(m.node_id, report.speed_bytes_per_s, report.free_memory))
    links = []
    for a, b in combinations([m.node_id for m in listed], 2):
        link = link_figures(a, b, reports)
        if link.rtt_s is not None and link.bytes_per_s is not None:
            links.append(LinkMeasure(a, b, link.rtt_s, link.bytes_per_s))
    return listed, links


def link_figures(a: str, b: str, reports: Mapping[str, MeasureReport]) -> LinkStat:
    """The link between ``a`` and ``b`` as both ends state it (None = not measured)."""
    ends = [r.links.get(peer) for r, peer in ((reports.get(a), b), (reports.get(b), a)) if r]
    found = [s for s in ends if s is not None]
    return LinkStat(_mean(s.rtt_s for s in found), _mean(s.bytes_per_s for s in found))


def _mean(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None and v > 0]
    return sum(known) / len(known) if known else None
