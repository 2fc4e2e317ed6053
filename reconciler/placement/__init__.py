"""Job placement: which plan runs a job (``single``, ``tensor`` or ``pipeline``), on which
members, with which shares, and how fast it is predicted to decode.

Pure: measured inputs in (``inputs``), a :class:`~reconciler.placement.planner.Placement`
out. The agent measures (gossip round trips, a kernel self-test, free memory) and the
Job controller applies the placement; nothing here does I/O or reads a clock.
"""

from reconciler.placement.inputs import LinkMeasure, MemberMeasure, ModelCost
from reconciler.placement.planner import PARALLELISMS, Placement, PlanError, choose_plan

__all__ = [
    "PARALLELISMS",
    "LinkMeasure",
    "MemberMeasure",
    "ModelCost",
    "Placement",
    "PlanError",
    "choose_plan",
]
