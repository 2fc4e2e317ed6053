"""The coordinator's view of one job run: who is ready, the tokens, who reported stats.

A :class:`Coordination` is the sink of the coordinator's own member run and receives
the remote members' READY / LOAD_FAILED / PROGRESS / DONE / ABORT messages. Its futures
(``all_ready``, ``local_done``, ``all_done``) fail together with the first
:class:`JobFailed`, so whatever :meth:`JobService.run` is waiting for ends at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from reconciler.inference.generate import TokenEvent
from reconciler.jobs.errors import JobFailed, Reason
from reconciler.jobs.messages import JobOffer, MemberStats, Participant
from reconciler.jobs.plans import participants
from reconciler.jobs.results import JobRequest, JobResult
from reconciler.placement.ringplan import JobPlan

log = logging.getLogger("meshnet.jobs")

ProgressCallback = Callable[[str, float], None]  # (node id, fraction of its slice loaded)
TokenCallback = Callable[[TokenEvent], None]
PlanCallback = Callable[[JobPlan, str], None]  # (the plan, the wire format resolved here)


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
    """State of one job on its coordinator (event-loop thread only)."""

    def __init__(
        self,
        offer: JobOffer,
        self_id: str,
        loop: asyncio.AbstractEventLoop,
        on_progress: ProgressCallback | None,
        on_token: TokenCallback | None,
        plan: JobPlan | None = None,
    ) -> None:
        self.offer, self.self_id, self.loop, self.plan = offer, self_id, loop, plan
        self.wire = offer.wire  # f32 or q80, the same for every member
        self.on_progress, self.on_token = on_progress, on_token
        self.node_ids = [p.node_id for p in offer.participants]
        self.ready_nodes: set[str] = set()
        self.stats: dict[str, MemberStats] = {}
        self.events: list[TokenEvent] = []
        self.all_ready: asyncio.Future[None] = loop.create_future()
        self.local_done: asyncio.Future[None] = loop.create_future()
        self.all_done: asyncio.Future[None] = loop.create_future()
        self.error: JobFailed | None = None
        self.created = loop.time()
        self.started = self.first_token = self.ready_at = 0.0

    @property
    def remote_ids(self) -> list[str]:
        return [n for n in self.node_ids if n != self.self_id]

    def missing(self, have: set[str] | dict[str, MemberStats]) -> list[str]:
        return [n for n in self.node_ids if n not in have]

    # -- MemberSink (local member) and remote messages ---------------------------------

    def progress(self, node_id: str, fraction: float) -> None:
        if self.on_progress is not None:
            _safely(self.on_progress, node_id, fraction)

    def ready(self, node_id: str, load_ms: float, resident_bytes: int) -> None:
        if node_id in self.ready_nodes:
            return
        self.ready_nodes.add(node_id)
        self.progress(node_id, 1.0)
        if not self.missing(self.ready_nodes):
            self.ready_at = self.loop.time()
            _resolve(self.all_ready)

    def load_failed(self, node_id: str, reason: str, message: str) -> None:
        self.fail(JobFailed(reason, f"{node_id}: {message}"))

    def token(self, event: TokenEvent) -> None:
        if not self.events:
            self.first_token = self.loop.time()
        self.events.append(event)
        if self.on_token is not None:
            _safely(self.on_token, event)

    def done(self, stats: MemberStats) -> None:
        self.stats.setdefault(stats.node_id, stats)
        if stats.node_id == self.self_id:
            _resolve(self.local_done)
        if not self.missing(self.stats):
            _resolve(self.all_done)

    def failed(self, node_id: str, reason: str, message: str) -> None:
        self.fail(JobFailed(reason, f"{node_id}: {message}"))

    def fail(self, error: JobFailed) -> None:
        """The first failure wins; every pending wait raises it."""
        if self.error is not None:
            return
        self.error = error
        for fut in (self.all_ready, self.local_done, self.all_done):
            if not fut.done():
                fut.set_exception(error)
                fut.exception()  # retrieved: no "never retrieved" warning

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


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _safely(fn: Callable[..., None], *args: object) -> None:
    try:
        fn(*args)
    except Exception:
        log.exception("a job callback failed")
