"""The coordinator's view of one job run: who is ready, the tokens, who reported stats.

A :class:`Coordination` is plain state, kept by :class:`~reconciler.jobs.machine.JobMachine`
(no futures, no clock: every time comes in as ``now``). Its phases::

    loading --all READY--> running --own rank done--> closing --all DONE/timeout--> (result)
       \\________________________ first failure (before own rank done) ____________> (failed)

A failure after the coordinator's own rank finished does not fail the job: every token
is known, so the result is reported with the stats that arrived (``missing_stats``).
"""

from __future__ import annotations

from typing import Protocol

from reconciler.jobs.errors import JobFailed, Reason
from reconciler.jobs.messages import JobOffer, MemberStats, Participant
from reconciler.jobs.plans import participants
from reconciler.jobs.results import JobRequest, JobResult
from reconciler.placement.ringplan import JobPlan

LOADING, RUNNING, CLOSING = "loading", "running", "closing"


class Token(Protocol):
    """What the coordinator needs of a generated token (``inference.generate.TokenEvent``)."""

    @property
    def token_id(self) -> int: ...
    @property
    def text(self) -> str: ...
    @property
    def finish_reason(self) -> str | None: ...
    @property
    def step_ms(self) -> float: ...
    @property
    def prefill_ms(self) -> float: ...
    @property
    def round(self) -> int: ...


def make_offer(request: JobRequest, session: int, plan: JobPlan | None = None) -> JobOffer:
    """The offer every participant of ``plan`` receives, in rank (stage) order; without
    a plan, a tensor plan over the whole ring (members in position order are ranks)."""
    if not request.prompt_ids:
        raise JobFailed(Reason.INVALID_REQUEST, "the prompt has no tokens")
    slots = sorted(request.ring.members, key=lambda s: s.position)
    chosen = (
        participants(plan)
        if plan is not None
        else tuple(Participant(s.node_id, s.start, s.end) for s in slots)
    )
    return JobOffer(
        job_id=request.job_id,
        session=session,
        model_ref=request.model_ref,
        prompt_ids=tuple(request.prompt_ids),
        sampling=request.sampling,
        ring_epoch=request.ring.epoch,
        ring_hash=request.ring.hash,
        shard_columns=request.ring.shard_columns,
        participants=chosen,
        plan=plan.kind if plan is not None else "tensor",
        wire=request.wire,
    )


class Coordination:
    """State of one job on its coordinator."""

    def __init__(
        self, offer: JobOffer, self_id: str, now: float, plan: JobPlan | None = None
    ) -> None:
        self.offer, self.self_id, self.plan = offer, self_id, plan
        self.wire = offer.wire  # f32 or q80, the same for every member
        self.node_ids = [p.node_id for p in offer.participants]
        self.phase = LOADING
        self.ready_nodes: set[str] = set()
        self.stats: dict[str, MemberStats] = {}
        self.events: list[Token] = []
        self.error: JobFailed | None = None
        self.deadline: float | None = None  # of the current phase, if it has one
        self.created = now
        self.started = self.first_token = self.ready_at = 0.0

    @property
    def remote_ids(self) -> list[str]:
        return [n for n in self.node_ids if n != self.self_id]

    def missing(self, have: set[str] | dict[str, MemberStats]) -> list[str]:
        return [n for n in self.node_ids if n not in have]

    def ready(self, node_id: str, now: float) -> bool:
        """Record a READY; True when it was the last one missing."""
        if node_id in self.ready_nodes:
            return False
        self.ready_nodes.add(node_id)
        if self.missing(self.ready_nodes):
            return False
        self.ready_at = now
        return True

    def token(self, event: Token, now: float) -> None:
        if not self.events:
            self.first_token = now
        self.events.append(event)

    def done(self, stats: MemberStats) -> None:
        self.stats.setdefault(stats.node_id, stats)

    def late(self) -> JobFailed:
        """Why the current phase's deadline passed."""
        if self.phase == LOADING:
            missing = self.missing(self.ready_nodes)
            return JobFailed(Reason.LOAD_TIMEOUT, f"not ready in time: {', '.join(missing)}")
        missing = self.missing(self.stats)
        return JobFailed(Reason.MEMBER_LOST, f"no JOB_DONE from {', '.join(missing)}")

    # -- the result ----------------------------------------------------------------------

    def result(self) -> JobResult:
        offer, events = self.offer, self.events
        decode_ms = sum(e.step_ms for e in events[1:])
        prefill_ms = events[0].prefill_ms if events else 0.0
        return JobResult(
            job_id=offer.job_id,
            token_ids=[e.token_id for e in events],
            output="".join(e.text for e in events),
            finish_reason=events[-1].finish_reason if events else None,
            prompt_tokens=len(offer.prompt_ids),
            completion_tokens=len(events),
            tokens_per_second=(len(events) - 1) * 1000.0 / decode_ms if decode_ms > 0 else None,
            prefill_tokens_per_second=(
                len(offer.prompt_ids) * 1000.0 / prefill_ms if prefill_ms > 0 else None
            ),
            time_to_first_token_ms=max(self.first_token - self.started, 0.0) * 1000.0,
            load_ms=(self.ready_at - self.created) * 1000.0,
            prefill_ms=prefill_ms,
            decode_ms=decode_ms,
            members=[self.stats.get(p.node_id) or _no_stats(p) for p in offer.participants],
            ring_epoch=offer.ring_epoch,
            ring_hash=offer.ring_hash,
            missing_stats=self.missing(self.stats),
            plan=self.plan,
            wire=self.wire,
            decode_rounds=events[-1].round if events else 0,
            layers=[(p.layer_start, p.layer_end) for p in offer.participants]
            if offer.plan == "pipeline"
            else [],
        )


def _no_stats(p: Participant) -> MemberStats:
    return MemberStats(p.node_id, p.start, p.end, 0.0, 0.0, 0, 0, 0, 0.0, 0, 0.0, 0)
