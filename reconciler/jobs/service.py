"""The job service of one agent: the asyncio driver of :class:`JobMachine`.

Coordinator (``run``): choose the job's plan (``planning.py``: single, tensor or
pipeline, from the ring, the model's cost and the pool's measurements), check the
prompt against the model, then hand the offer to the machine and await its outcome
(``JobSucceeded`` or ``JobEnded``). The machine (``machine.py``) decides everything of
the protocol: offers, READY/START/DONE, member limits, timeouts, member loss, aborts.

This driver keeps the I/O: it sends the machine's CONTROL messages through
``send_control``, arms one event-loop timer at ``get_timer()``, delivers TENSOR frames
to the running ranks' collectives, and runs each rank's loading and generation in
threads (``member.py``), reporting what they did back to the machine. The model of an
offer is a name the ``model_resolver`` looks up (reconciler/models.py); a name that does
not resolve is refused with ``ModelNotFound`` and a generic message to a peer.

Failure never hangs: ``member_lost`` (from gossip), a collective timeout, a member's
JOB_ABORT or LOAD_FAILED fail the job at once with :class:`JobFailed`, and the members
hear JOB_ABORT so their threads stop. Malformed or unexpected frames are dropped and
counted in ``dropped``; nothing raises to the caller.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import cast

import psutil

from reconciler.gossip.ring import Ring
from reconciler.inference.generate import TokenEvent
from reconciler.inference.kernels import default_activations
from reconciler.jobs import machineevents as ev
from reconciler.jobs.coordinator import Coordination, make_offer
from reconciler.jobs.errors import JobFailed, JobProtocolError, Reason
from reconciler.jobs.limits import prompt_problem
from reconciler.jobs.machine import JobMachine
from reconciler.jobs.machineoffers import LOAD_FAILED_TO_PEER as LOAD_FAILED_TO_PEER
from reconciler.jobs.machineoffers import MAX_RUNS, MAX_RUNS_PER_PEER
from reconciler.jobs.member import MemberRun
from reconciler.jobs.messages import JobOffer, MemberStats
from reconciler.jobs.netcollectives import (
    DEFAULT_TIMEOUT,
    NetworkCollectives,
    TensorSender,
    split_session,
)
from reconciler.jobs.planning import choose
from reconciler.jobs.plans import resolve_wire
from reconciler.jobs.results import JobRequest, JobResult
from reconciler.jobs.shards import ShardCache
from reconciler.placement.ringplan import JobPlan, MeasureSource

log = logging.getLogger("meshnet.jobs")

MODEL_NOT_AVAILABLE = "the model is not available on this member"

SendControl = Callable[[str, bytes], object]  # (node id, payload); False means not sent
ProgressCallback = Callable[[str, float], None]  # (node id, fraction of its slice loaded)
TokenCallback = Callable[[TokenEvent], None]
PlanCallback = Callable[[JobPlan, str], None]  # (the plan, the wire format resolved here)


@dataclass
class _Waiter:
    """A ``run`` call waiting for its job's outcome."""

    outcome: asyncio.Future[JobResult]
    on_progress: ProgressCallback | None
    on_token: TokenCallback | None


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
        memory_offer: Callable[[], int | None] = lambda: None,
    ) -> None:
        self.self_id = self_id
        self.machine = JobMachine(
            self_id, ready_timeout=ready_timeout, done_timeout=done_timeout,
            ring_view=ring_view, max_runs_per_peer=max_runs_per_peer, max_runs=max_runs,
        )  # fmt: skip
        self.send_control = send_control
        self.tensor_transport_factory = tensor_transport_factory
        self.model_resolver = model_resolver
        self.collective_timeout = collective_timeout
        self.cache = cache or ShardCache()
        self.new_session = new_session
        self.runs: dict[int, MemberRun] = {}  # the ranks whose threads run here
        self.dropped = self.machine.drops  # one counter: the machine's and ours
        self.measures = measures  # the pool's published measurements, for the planner
        self.free_memory = free_memory  # a member refuses a share it cannot hold
        self.memory_offer = memory_offer  # ... or one beyond spec.capacity.memoryBytes
        self._waiters: dict[int, _Waiter] = {}
        self._local_paths: dict[int, str] = {}  # session -> the coordinator's model path
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None

    @property
    def coordinations(self) -> dict[int, Coordination]:
        return self.machine.coordinations

    @property
    def ring_view(self) -> Callable[[], Ring | None] | None:
        """Gossip's current ring, which offers must match (the machine checks)."""
        return self.machine.ring_view

    @ring_view.setter
    def ring_view(self, view: Callable[[], Ring | None] | None) -> None:
        self.machine.ring_view = view

    # -- frames from peers and gossip (event loop) -------------------------------------

    def on_control(self, from_node: str, payload: bytes) -> None:
        """A CONTROL frame from an authenticated peer."""
        self.machine.receive_message(from_node, payload, _now())
        self._pump()

    def on_tensor(self, from_node: str, payload: bytes) -> None:
        """A TENSOR frame from an authenticated peer (data plane: straight to the rank)."""
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
        self.machine.member_lost(node_id, _now())
        self._pump()

    def close(self) -> None:
        """Abort every job (the agent is stopping)."""
        self.machine.close(_now())
        self._pump()
        for run in list(self.runs.values()):  # ranks the machine already let go of
            run.abort("the agent is stopping")
        if self._timer is not None:
            self._timer.cancel()
            self._timer, self._timer_at = None, None

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
        if on_plan is not None:
            on_plan(plan, offer.wire)
        session = offer.session
        waiter = _Waiter(loop.create_future(), on_progress, on_token)
        self._waiters[session] = waiter
        if request.model_path is not None:
            self._local_paths[session] = request.model_path
        try:
            self.machine.coordinate(offer, loop.time(), plan)
            self._pump()
            return await waiter.outcome
        except BaseException as exc:
            if not isinstance(exc, JobFailed):  # cancelled: tell the members
                self.machine.abort(
                    session, Reason.ABORTED, str(exc) or type(exc).__name__, loop.time()
                )
                self._pump()
            raise
        finally:
            del self._waiters[session]
            self._local_paths.pop(session, None)

    async def _check_prompt(self, offer: JobOffer, local: str | Path | None) -> None:
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

    # -- the machine's outputs --------------------------------------------------------------

    def _pump(self) -> None:
        """Send the machine's messages, act on its events, arm its timer."""
        machine = self.machine
        while True:
            sends = machine.messages_to_send()
            for send in sends:
                if not self._send(send) and send.offer:
                    machine.unreachable(send.session, send.node, _now())
            event = machine.next_event()
            if event is None and not sends:
                break
            if event is not None:
                self._handle(event)
        self._arm_timer()

    def _send(self, send: ev.Send) -> bool:
        try:
            return self.send_control(send.node, send.payload) is not False
        except Exception:  # the coordinator's timeouts cover a report that is lost
            log.exception("cannot send a job message to %s", send.node)
            return False

    def _handle(self, event: ev.Event) -> None:
        if isinstance(event, ev.LoadSlice):
            self._load(event.offer, event.coordinator)
        elif isinstance(event, ev.StartSlice):
            run = self.runs.get(event.session)
            if run is not None:
                run.start()
        elif isinstance(event, ev.StopSlice):
            run = self.runs.get(event.session)
            if run is not None:
                run.abort(event.reason)
        elif isinstance(event, ev.FrameDropped):
            log.debug("dropped a job frame: %s %s", event.reason, event.detail)
        else:
            self._tell_waiter(event)

    def _tell_waiter(
        self, event: ev.Progress | ev.TokenOut | ev.JobSucceeded | ev.JobEnded
    ) -> None:
        waiter = self._waiters.get(event.session)
        if waiter is None:
            return
        if isinstance(event, ev.Progress) and waiter.on_progress is not None:
            _safely(waiter.on_progress, event.node_id, event.fraction)
        elif isinstance(event, ev.TokenOut) and waiter.on_token is not None:
            _safely(waiter.on_token, cast(TokenEvent, event.token))
        elif isinstance(event, ev.JobSucceeded) and not waiter.outcome.done():
            if event.note:
                log.warning("job %s: %s", event.result.job_id, event.note)
            waiter.outcome.set_result(event.result)
        elif isinstance(event, ev.JobEnded) and not waiter.outcome.done():
            waiter.outcome.set_exception(event.error)

    def _arm_timer(self) -> None:
        at = self.machine.get_timer()
        if at == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = None, at
        if at is not None:
            try:
                self._timer = asyncio.get_running_loop().call_at(at, self._on_timer)
            except RuntimeError:  # no loop (closing): nothing is left to time out
                self._timer_at = None

    def _on_timer(self) -> None:
        self._timer, self._timer_at = None, None
        self.machine.handle_timer(_now())
        self._pump()

    # -- this node's ranks (threads) ------------------------------------------------------

    def _load(self, offer: JobOffer, coordinator: str) -> None:
        session = offer.session
        if session not in self.machine.ranks:  # stopped before we got to it
            return
        local = self._local_paths.get(session) if coordinator == self.self_id else None
        try:
            path = Path(local if local is not None else self.model_resolver(offer.model_ref))
        except Exception as exc:  # the resolver's own errors: say which model and why
            log.info("job %s: model %r: %s", offer.job_id, offer.model_ref,
                     getattr(exc, "detail", exc))  # fmt: skip
            self.machine.slice_failed(session, Reason.MODEL_NOT_FOUND, MODEL_NOT_AVAILABLE, _now())
            return  # the caller's pump sends the refusal
        rank = offer.rank_of(self.self_id)
        assert rank is not None
        ids = [p.node_id for p in offer.participants]
        comm = NetworkCollectives(
            session, rank, ids, self.tensor_transport_factory(), self.collective_timeout
        )
        run = MemberRun(
            offer, self.self_id, coordinator, path, comm, _RankSink(self, session), self.cache,
            asyncio.get_running_loop(), lambda: self._ended(session), self.free_memory,
            self.memory_offer(),  # read here, on the loop: the store is not the loader's
        )  # fmt: skip
        self.runs[session] = run
        run.load()

    def _ended(self, session: int) -> None:
        self.runs.pop(session, None)

    def _report(self, fn: Callable[..., None], *args: object) -> None:
        """An engine report (on the loop) into the machine, then its outputs."""
        fn(*args, _now())
        self._pump()

    def _drop(self, reason: str, detail: object = "") -> None:
        self.dropped[reason] += 1
        log.debug("dropped a job frame: %s %s", reason, detail)


class _RankSink:
    """A rank's reports (on the event loop), as the machine's engine inputs."""

    def __init__(self, service: JobService, session: int) -> None:
        self.service, self.session = service, session
        self.machine = service.machine

    def progress(self, node_id: str, fraction: float) -> None:
        self.service._report(self.machine.slice_progress, self.session, fraction)

    def ready(self, node_id: str, load_ms: float, resident_bytes: int) -> None:
        self.service._report(self.machine.slice_loaded, self.session, load_ms, resident_bytes)

    def load_failed(self, node_id: str, reason: str, message: str) -> None:
        self.service._report(self.machine.slice_failed, self.session, reason, message)

    def token(self, event: TokenEvent) -> None:
        self.service._report(self.machine.slice_token, self.session, event)

    def done(self, stats: MemberStats) -> None:
        self.service._report(self.machine.slice_done, self.session, stats)

    def failed(self, node_id: str, reason: str, message: str) -> None:
        self.service._report(self.machine.slice_aborted, self.session, reason, message)


def _now() -> float:
    """The event loop's clock (what the timers use); monotonic when no loop runs."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()


def _safely(fn: Callable[..., None], *args: object) -> None:
    try:
        fn(*args)
    except Exception:
        log.exception("a job callback failed")
