"""A member's side of :class:`~reconciler.jobs.machine.JobMachine`: its ranks and the
checks an offer must pass before anything is loaded (pure functions of the offer, the
ranks this node runs and gossip's ring)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.gossip.ring import Ring
from reconciler.jobs.errors import Reason
from reconciler.jobs.messages import JobOffer
from reconciler.jobs.plans import ring_problem

MAX_RUNS_PER_PEER = 2
MAX_RUNS = 4
BUSY = "this member is busy"
LOAD_FAILED_TO_PEER = "could not load the model on this member (its agent log says why)"


@dataclass
class Rank:
    """This node's rank of one session: ``loading`` -> ``ready`` -> ``running``."""

    offer: JobOffer
    coordinator: str
    state: str = "loading"
    deadline: float | None = None  # for START, on a member of a remote coordinator

    @property
    def node_ids(self) -> list[str]:
        return [p.node_id for p in self.offer.participants]


def unexpected(
    offer: JobOffer, coordinator: str, self_id: str, ranks: Mapping[int, Rank]
) -> str | None:
    """Why an offer is dropped unanswered (a drop reason), or None."""
    if offer.session in ranks:
        return "duplicate-offer"
    if offer.rank_of(self_id) is None or offer.rank_of(coordinator) is None:
        return "not-a-participant"
    if any(r.offer.job_id == offer.job_id and r.coordinator != coordinator
           for r in ranks.values()):  # fmt: skip
        return "job-of-another-coordinator"
    return None


def busy(coordinator: str, ranks: Mapping[int, Rank], per_peer: int, total: int) -> bool:
    """True when one more rank would pass the limits (per coordinator, in all)."""
    from_peer = sum(r.coordinator == coordinator for r in ranks.values())
    return from_peer >= per_peer or len(ranks) >= total


def ring_refusal(offer: JobOffer, ring: Ring | None) -> str | None:
    """Why an offer does not fit our ring (a ``RingMismatch`` message), or None."""
    if ring is None:
        return None
    if ring.hash != offer.ring_hash:
        return f"my ring is {ring.hash[:12]} (epoch {ring.epoch}), not {offer.ring_hash[:12]}"
    return ring_problem(offer, ring)


def refused_reason(reason: str, message: str, to_peer: bool) -> str:
    """What a load failure tells: a peer learns nothing of our files or errors."""
    return LOAD_FAILED_TO_PEER if to_peer and reason == Reason.LOAD_FAILED else message
