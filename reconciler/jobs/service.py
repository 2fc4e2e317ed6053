"""The job service of one agent: coordinator of the jobs applied here, member of all.

Coordinator (``run``): choose the job's plan (``planning.py``: single, tensor or
pipeline, from the ring, the model's cost and the pool's measurements), offer the job to
the plan's participants only, load its own slice, wait for every READY, send START, run
its own rank of the generation loop (streaming tokens to ``on_token``), then collect
every member's JOB_DONE stats. Member (``on_control``): on
JOB_OFFER load the slice in a thread (LOAD_PROGRESS), reply JOB_READY, on JOB_START run
the same loop with :class:`NetworkCollectives`, then send JOB_DONE.

Offers from peers are bounded: a member runs at most ``max_runs_per_peer`` jobs offered
by one coordinator and ``max_runs`` in all, takes part only in plans among its own
ring's members and shard columns (``plans.ring_problem``), refuses a share larger than
its free memory (``plans.memory_problem``: never swap, never die), and answers load failures
toward a remote coordinator with a generic message (the details stay in its own log),
so an offer cannot probe its files. The
model of an offer is a name the ``model_resolver`` looks up (reconciler/models.py).

Failure never hangs: ``member_lost`` (from gossip), a collective timeout, a member's
JOB_ABORT or LOAD_FAILED fail the coordination at once with :class:`JobFailed`, and the
coordinator then sends JOB_ABORT to every member so their threads stop. Malformed or
unexpected frames are dropped and counted in ``dropped``; nothing raises to the caller.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import psutil

from reconciler.gossip.ring import Ring
from reconciler.inference.generate import TokenEvent
from reconciler.inference.kernels import default_activations
from reconciler.jobs import messages as m
from reconciler.jobs.coordinator import (
    Coordination,
    PlanCallback,
    ProgressCallback,
    TokenCallback,
    make_offer,
)
from reconciler.jobs.errors import JobFailed, JobProtocolError, Reason
from reconciler.jobs.limits import prompt_problem
from reconciler.jobs.member import MemberRun, MemberSink
from reconciler.jobs.netcollectives import (
    DEFAULT_TIMEOUT,
    NetworkCollectives,
    TensorSender,
    split_session,
)
from reconciler.jobs.planning import choose
from reconciler.jobs.plans import resolve_wire, ring_problem
from reconciler.jobs.results import JobRequest, JobResult
from reconciler.jobs.shards import ShardCache
from reconciler.placement.ringplan import MeasureSource

log = logging.getLogger("meshnet.jobs")

MAX_RUNS_PER_PEER = 2
MAX_RUNS = 4
MODEL_NOT_AVAILABLE = "the model is not available on this member"
LOAD_FAILED_TO_PEER = "could not load the model on this member (its agent log says why)"

SendControl = Callable[[str, bytes], object]  # (node id, payload); False means not sent


class JobService:
    """Runs jobs across the ring; see the module docstring."""

    def __init__(
        self,
        self_id: str,
        send_control: SendControl,
        tensor_transport_factory: Callable[[], TensorSender],
        model_resolver: Callable[[str], str | Path],
        *,
        ready_timeout: float = 300.0,
        done_timeout: float = 5.0,
        collective_timeout: float = DEFAULT_TIMEOUT,
        ring_view: Callable[[], Ring | None] | None = None,
        cache: ShardCache | None = None,
        new_session: Callable[[], int] = lambda: secrets.randbits(64),
        max_runs_per_peer: int = MAX_RUNS_PER_PEER,
        max_runs: int = MAX_RUNS,
        measures: MeasureSource | None = None,
        free_memory: Callable[[], int] = lambda: int(psutil.virtual_memory().available),
    ) -> None:
        self.self_id = self_id
        self.send_control = send_control
        self.tensor_transport_factory = tensor_transport_factory
        self.model_resolver = model_resolver
        self.ready_timeout, self.done_timeout = ready_timeout, done_timeout
        self.collective_timeout = collective_timeout
        self.ring_view = ring_view
        self.cache = cache or ShardCache()
        self.new_session = new_session
        self.runs: dict[int, MemberRun] = {}
        self.coordinations: dict[int, Coordination] = {}
        self.dropped: Counter[str] = Counter()
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._local_paths: dict[int, str] = {}  # session -> the coordinator's model path
        self.max_runs_per_peer, self.max_runs = max_runs_per_peer, max_runs
        self.measures = measures  # the pool's published measurements, for the planner
        self.free_memory = free_memory  # a member refuses a share it cannot hold

    # -- frames from peers (event loop) --------------------------------------------------

    def on_control(self, from_node: str, payload: bytes) -> None:
        """A CONTROL frame from an authenticated peer."""
        try:
            msg = m.decode(payload)
        except JobProtocolError as exc:
            self._drop("bad-control", exc)
            return
        if isinstance(msg, m.JobOffer):
            self._on_offer(from_node, msg)
        elif isinstance(msg, m.JobStart | m.JobAbort):
            self._on_member_order(from_node, msg)
        if isinstance(msg, m.JobAbort | m.JobReady | m.JobLoadFailed | m.LoadProgress | m.JobDone):
            self._on_member_report(from_node, msg)

    def on_tensor(self, from_node: str, payload: bytes) -> None:
        """A TENSOR frame from an authenticated peer."""
        try:
            session, frame = split_session(payload)
        except JobProtocolError as exc:
            self._drop("bad-tensor", exc)
            return
        run = self.runs.get(session)
        if run is None:
            self._drop("unknown-session")
        elif not run.collectives.deliver(from_node, frame):
            self._drop("tensor-refused")

    def member_lost(self, node_id: str) -> None:
        """``node_id`` left the ring: fail and abort every job it takes part in."""
        for coord in list(self.coordinations.values()):
            if node_id in coord.node_ids and node_id != self.self_id:
                coord.fail(JobFailed(Reason.MEMBER_LOST, f"member {node_id} was lost"))
        for run in list(self.runs.values()):
            if node_id in run.node_ids and node_id != self.self_id:
                run.abort(f"{Reason.MEMBER_LOST}: member {node_id} was lost")

    def close(self) -> None:
        """Abort every job (the agent is stopping)."""
        for coord in list(self.coordinations.values()):
            coord.fail(JobFailed(Reason.ABORTED, "the agent is stopping"))
        for run in list(self.runs.values()):
            run.abort("the agent is stopping")

    # -- coordinator ------------------------------------------------------------------------

    async def run(
        self,
        request: JobRequest,
        on_progress: ProgressCallback | None = None,
        on_token: TokenCallback | None = None,
        on_plan: PlanCallback | None = None,
    ) -> JobResult:
        """Run ``request`` on its ring; raises JobFailed(reason, message) on failure.
        ``on_plan`` hears the chosen plan before anything is offered."""
        loop = asyncio.get_running_loop()
        if not request.prompt_ids:  # before anything is read
            raise JobFailed(Reason.INVALID_REQUEST, "the prompt has no tokens")
        activations = self.cache.activations or default_activations()
        request = replace(request, wire=resolve_wire(request.wire, activations))  # f32 | q80
        if self.self_id not in {s.node_id for s in request.ring.members}:
            raise JobFailed(Reason.NOT_IN_RING, f"{self.self_id} is not a member of the ring")
        plan = await choose(self.self_id, request, self.model_resolver, self.cache, self.measures)
        offer = make_offer(request, self.new_session(), plan)
        await self._check_prompt(offer, request.model_path)
        coord = Coordination(offer, self.self_id, loop, on_progress, on_token, plan)
        coord.wire = offer.wire
        if on_plan is not None:
            on_plan(plan, coord.wire)
        self.coordinations[offer.session] = coord
        if request.model_path is not None:
            self._local_paths[offer.session] = request.model_path
        try:
            return await self._coordinate(coord)
        except BaseException as exc:
            reason = exc.reason if isinstance(exc, JobFailed) else Reason.ABORTED
            self._abort_all(coord, reason, str(exc) or type(exc).__name__)
            raise
        finally:
            del self.coordinations[offer.session]
            self._local_paths.pop(offer.session, None)

    async def _check_prompt(self, offer: m.JobOffer, local: str | Path | None) -> None:
        """Refuse a prompt beyond the model's context or a frame limit before anything is
        offered or loaded (a model that cannot be read is reported by the load itself);
        ``local`` is the coordinator's own path of the model, if it resolved one."""
        try:
            path = Path(local if local is not None else self.model_resolver(offer.model_ref))
            info = await asyncio.to_thread(self.cache.info, path)
        except Exception:  # the resolver's or the reader's errors: the load reports them
            return
        tokens, world = len(offer.prompt_ids), len(offer.participants)
        problem = prompt_problem(tokens, offer.sampling.max_tokens, info.config, world)
        if problem is not None:
            raise JobFailed(Reason.PROMPT_TOO_LONG, problem)

    async def _coordinate(self, coord: Coordination) -> JobResult:
        offer = coord.offer
        payload = m.encode(offer)
        for node in coord.remote_ids:
            if self.send_control(node, payload) is False:
                raise JobFailed(Reason.MEMBER_UNREACHABLE, f"cannot send the offer to {node}")
        self._accept(offer, self.self_id, coord)
        await _within(coord.all_ready, self.ready_timeout, lambda: _late(coord, "ready"))
        local = self.runs.get(offer.session)
        if coord.error is not None or local is None:  # failed while the wait returned
            raise coord.error or JobFailed(Reason.ABORTED, "the local rank ended before START")
        coord.started = coord.loop.time()
        self._broadcast(coord, m.JobStart(offer.job_id, offer.session))
        local.start()
        await coord.local_done
        try:
            await _within(coord.all_done, self.done_timeout, lambda: _late(coord, "done"))
        except JobFailed as exc:  # every token is known: report the stats we have
            log.warning("job %s: %s", offer.job_id, exc)
        return coord.result()

    def _broadcast(self, coord: Coordination, msg: m.Message) -> None:
        payload = m.encode(msg)
        for node in coord.remote_ids:
            self.send_control(node, payload)

    def _abort_all(self, coord: Coordination, reason: str, message: str) -> None:
        offer = coord.offer
        self._broadcast(coord, m.JobAbort(offer.job_id, offer.session, reason, message))
        run = self.runs.get(offer.session)
        if run is not None:
            run.abort(f"{reason}: {message}")

    def _on_member_report(self, from_node: str, msg: m.Message) -> None:
        coord = self.coordinations.get(msg.session)
        if coord is None or coord.offer.job_id != msg.job_id or from_node not in coord.node_ids:
            if not isinstance(msg, m.JobAbort):  # an abort may be meant for a member run
                self._drop("no-such-coordination")
            return
        if getattr(msg, "node_id", from_node) != from_node:
            self._drop("node-mismatch")
        elif isinstance(msg, m.JobReady):
            coord.ready(from_node, msg.load_ms, msg.resident_bytes)
        elif isinstance(msg, m.LoadProgress):
            coord.progress(from_node, msg.fraction)
        elif isinstance(msg, m.JobLoadFailed | m.JobAbort):
            coord.failed(from_node, msg.reason, msg.message)
        elif isinstance(msg, m.JobDone) and msg.stats.node_id == from_node:
            coord.done(msg.stats)

    # -- member -------------------------------------------------------------------------

    def _on_offer(self, coordinator: str, offer: m.JobOffer) -> None:
        if offer.session in self.runs:
            return self._drop("duplicate-offer")
        if offer.rank_of(self.self_id) is None or offer.rank_of(coordinator) is None:
            return self._drop("not-a-participant")
        if any(r.offer.job_id == offer.job_id and r.coordinator != coordinator
               for r in self.runs.values()):  # fmt: skip
            return self._drop("job-of-another-coordinator")
        sink = _RemoteSink(self, coordinator, offer)
        from_peer = sum(r.coordinator == coordinator for r in self.runs.values())
        if from_peer >= self.max_runs_per_peer or len(self.runs) >= self.max_runs:
            self._drop("too-many-runs")
            return sink.load_failed(self.self_id, Reason.LOAD_FAILED, "this member is busy")
        ring = self.ring_view() if self.ring_view is not None else None
        if ring is not None and ring.hash != offer.ring_hash:
            message = (
                f"my ring is {ring.hash[:12]} (epoch {ring.epoch}), not {offer.ring_hash[:12]}"
            )
            return sink.load_failed(self.self_id, Reason.RING_MISMATCH, message)
        problem = ring_problem(offer, ring) if ring is not None else None
        if problem is not None:
            return sink.load_failed(self.self_id, Reason.RING_MISMATCH, problem)
        self._accept(offer, coordinator, sink)

    def _accept(self, offer: m.JobOffer, coordinator: str, sink: MemberSink) -> None:
        local = self._local_paths.get(offer.session) if coordinator == self.self_id else None
        try:
            path = Path(local if local is not None else self.model_resolver(offer.model_ref))
        except Exception as exc:  # the resolver's own errors: say which model and why
            log.info("job %s: model %r: %s", offer.job_id, offer.model_ref,
                     getattr(exc, "detail", exc))  # fmt: skip
            sink.load_failed(self.self_id, Reason.MODEL_NOT_FOUND, MODEL_NOT_AVAILABLE)
            return
        session = offer.session
        rank = offer.rank_of(self.self_id)
        assert rank is not None
        ids = [p.node_id for p in offer.participants]
        comm = NetworkCollectives(
            session, rank, ids, self.tensor_transport_factory(), self.collective_timeout
        )
        loop = asyncio.get_running_loop()
        run = MemberRun(
            offer, self.self_id, coordinator, path, comm, sink, self.cache, loop,
            lambda: self._ended(session), self.free_memory,
        )  # fmt: skip
        self.runs[session] = run
        if coordinator != self.self_id:  # a member never waits for START forever
            timeout = self.ready_timeout + self.done_timeout
            self._timers[session] = loop.call_later(timeout, self._start_overdue, session)
        run.load()

    def _on_member_order(self, from_node: str, msg: m.JobStart | m.JobAbort) -> None:
        run = self.runs.get(msg.session)
        if run is None or run.coordinator != from_node or run.offer.job_id != msg.job_id:
            if isinstance(msg, m.JobStart):
                self._drop("no-such-run")
            return
        if isinstance(msg, m.JobStart):
            self._cancel_timer(msg.session)
            run.start()
        else:
            run.abort(f"{msg.reason}: {msg.message}")

    def _start_overdue(self, session: int) -> None:
        run = self.runs.get(session)
        if run is not None and run.state in ("loading", "ready"):
            run.abort("no JOB_START from the coordinator")

    def _ended(self, session: int) -> None:
        self.runs.pop(session, None)
        self._cancel_timer(session)

    def _cancel_timer(self, session: int) -> None:
        timer = self._timers.pop(session, None)
        if timer is not None:
            timer.cancel()

    def _drop(self, reason: str, detail: object = "") -> None:
        self.dropped[reason] += 1
        log.debug("dropped a job frame: %s %s", reason, detail)


class _RemoteSink:
    """A member run's reports, sent to a remote coordinator as control messages."""

    def __init__(self, service: JobService, coordinator: str, offer: m.JobOffer) -> None:
        self.service, self.coordinator = service, coordinator
        self.job_id, self.session = offer.job_id, offer.session

    def _send(self, msg: m.Message) -> None:
        try:
            self.service.send_control(self.coordinator, m.encode(msg))
        except Exception:  # the coordinator's timeouts cover a report that is lost
            log.exception("job %s: cannot report to %s", self.job_id, self.coordinator)

    def progress(self, node_id: str, fraction: float) -> None:
        self._send(m.LoadProgress(self.job_id, self.session, node_id, fraction))

    def ready(self, node_id: str, load_ms: float, resident_bytes: int) -> None:
        self._send(m.JobReady(self.job_id, self.session, node_id, load_ms, resident_bytes))

    def load_failed(self, node_id: str, reason: str, message: str) -> None:
        if reason == Reason.LOAD_FAILED and message != "this member is busy":
            message = LOAD_FAILED_TO_PEER  # no file names, errors or existence to a peer
        self._send(m.JobLoadFailed(self.job_id, self.session, node_id, reason, message))

    def token(self, event: TokenEvent) -> None:
        """Only the coordinator streams tokens (every rank has the same ones)."""

    def done(self, stats: m.MemberStats) -> None:
        self._send(m.JobDone(self.job_id, self.session, stats))

    def failed(self, node_id: str, reason: str, message: str) -> None:
        self._send(m.JobAbort(self.job_id, self.session, reason, message))


async def _within(fut: asyncio.Future[None], timeout: float, late: Callable[[], JobFailed]) -> None:
    try:
        await asyncio.wait_for(asyncio.shield(fut), timeout)
    except TimeoutError:
        raise late() from None


def _late(coord: Coordination, what: str) -> JobFailed:
    if what == "ready":
        missing = coord.missing(coord.ready_nodes)
        return JobFailed(Reason.LOAD_TIMEOUT, f"not ready in time: {', '.join(missing)}")
    missing = coord.missing(coord.stats)
    return JobFailed(Reason.MEMBER_LOST, f"no JOB_DONE from {', '.join(missing)}")
