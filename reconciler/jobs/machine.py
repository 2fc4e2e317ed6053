"""JobMachine: the job protocol, sans-IO (messages, engine reports and ``now`` in;
messages, timer deadlines and events out), for both roles of a node.

The driver (:class:`~reconciler.jobs.service.JobService`) owns the peer links, the
clock and the engine threads. It calls the inputs below, then sends what
``messages_to_send()`` returns, handles every ``next_event()``
(:mod:`reconciler.jobs.machineevents`), and calls ``handle_timer(now)`` at
``get_timer()``. Nothing here raises on network input: a bad or unexpected frame is
dropped, counted in ``drops[reason]`` and reported as ``FrameDropped``.

Coordinator (a :class:`Coordination` per session; see coordinator.py for its phases)::

    input                          phase      ->  output
    coordinate(offer)              -          ->  OFFER to members, LoadSlice (own rank)
    READY from the last one        loading    ->  START to members, StartSlice
    own rank done, DONE missing    running    ->  closing (deadline done_timeout)
    last DONE, or closing deadline closing    ->  JobSucceeded
    LOAD_FAILED, ABORT, lost,      loading,   ->  ABORT to members, StopSlice, JobEnded
      ready deadline, abort()        running
    any failure                    closing    ->  JobSucceeded (with a note)

Member (a :class:`Rank` per session)::

    OFFER (checks pass)            -          ->  loading, LoadSlice (deadline for START)
    slice_loaded                   loading    ->  ready, READY to the coordinator
    START                          ready      ->  running, StartSlice
    slice_done / slice_aborted     running    ->  DONE / ABORT to the coordinator, gone
    slice_failed                   loading    ->  LOAD_FAILED to the coordinator, gone
    ABORT, lost, START deadline    any        ->  StopSlice, gone

The coordinator's own rank is a Rank too; its reports go to its Coordination directly.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable

from reconciler.gossip.ring import Ring
from reconciler.jobs import messages as m
from reconciler.jobs.coordinator import CLOSING, LOADING, RUNNING, Coordination, Token
from reconciler.jobs.errors import JobFailed, JobProtocolError, Reason
from reconciler.jobs.machineevents import (
    Event,
    FrameDropped,
    JobEnded,
    JobSucceeded,
    LoadSlice,
    Progress,
    Send,
    StartSlice,
    StopSlice,
    TokenOut,
)
from reconciler.jobs.machineoffers import (
    BUSY,
    MAX_RUNS,
    MAX_RUNS_PER_PEER,
    Rank,
    busy,
    refused_reason,
    ring_refusal,
    unexpected,
)
from reconciler.placement.ringplan import JobPlan

REPORTS = m.JobAbort | m.JobReady | m.JobLoadFailed | m.LoadProgress | m.JobDone


class JobMachine:
    """The job protocol of one node; see the module docstring."""

    def __init__(
        self,
        self_id: str,
        *,
        ready_timeout: float = 300.0,
        done_timeout: float = 5.0,
        ring_view: Callable[[], Ring | None] | None = None,
        max_runs_per_peer: int = MAX_RUNS_PER_PEER,
        max_runs: int = MAX_RUNS,
    ) -> None:
        self.self_id = self_id
        self.ready_timeout, self.done_timeout = ready_timeout, done_timeout
        self.ring_view = ring_view  # gossip's current ring (pure data), for offers
        self.max_runs_per_peer, self.max_runs = max_runs_per_peer, max_runs
        self.coordinations: dict[int, Coordination] = {}
        self.ranks: dict[int, Rank] = {}
        self.drops: Counter[str] = Counter()
        self._outbox: list[Send] = []
        self._events: deque[Event] = deque()

    # -- outputs ----------------------------------------------------------------------

    def messages_to_send(self) -> list[Send]:
        out, self._outbox = self._outbox, []
        return out

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        deadlines = [c.deadline for c in self.coordinations.values()]
        deadlines += [r.deadline for r in self.ranks.values()]
        return min((d for d in deadlines if d is not None), default=None)

    def handle_timer(self, now: float) -> None:
        for coord in list(self.coordinations.values()):
            if coord.deadline is not None and coord.deadline <= now:
                self._fail(coord, coord.late(), now)
        for session, rank in list(self.ranks.items()):
            if rank.deadline is not None and rank.deadline <= now:
                self._stop(session, "no JOB_START from the coordinator")

    # -- inputs: the coordinator's caller -----------------------------------------------

    def coordinate(self, offer: m.JobOffer, now: float, plan: JobPlan | None = None) -> None:
        """Offer ``offer`` (its participants include this node) and load our own rank."""
        if offer.session in self.coordinations or offer.session in self.ranks:
            raise ValueError(f"session {offer.session} is in use")
        if offer.rank_of(self.self_id) is None:
            raise ValueError(f"{self.self_id} is not a participant of its own offer")
        coord = Coordination(offer, self.self_id, now, plan)
        coord.deadline = now + self.ready_timeout
        self.coordinations[offer.session] = coord
        payload = m.encode(offer)
        for node in coord.remote_ids:
            self._outbox.append(Send(node, payload, offer.session, offer=True))
        self._accept(offer, self.self_id, now)

    def unreachable(self, session: int, node: str, now: float) -> None:
        """The driver could not send ``node`` its offer."""
        coord = self.coordinations.get(session)
        if coord is not None:
            error = JobFailed(Reason.MEMBER_UNREACHABLE, f"cannot send the offer to {node}")
            self._fail(coord, error, now)

    def abort(self, session: int, reason: str, message: str, now: float) -> None:
        """The coordinator's caller gives up on the job (cancelled)."""
        coord = self.coordinations.get(session)
        if coord is not None:
            self._fail(coord, JobFailed(reason, message), now, force=True)

    def member_lost(self, node_id: str, now: float) -> None:
        """``node_id`` left the ring: fail and stop every job it takes part in."""
        if node_id == self.self_id:
            return
        error = JobFailed(Reason.MEMBER_LOST, f"member {node_id} was lost")
        for coord in list(self.coordinations.values()):
            if node_id in coord.node_ids:
                self._fail(coord, error, now)
        for session, rank in list(self.ranks.items()):
            if node_id in rank.node_ids:
                self._stop(session, f"{error.reason}: {error.message}")

    def close(self, now: float) -> None:
        """The agent is stopping: end every job."""
        for coord in list(self.coordinations.values()):
            self._fail(coord, JobFailed(Reason.ABORTED, "the agent is stopping"), now)
        for session in list(self.ranks):
            self._stop(session, "the agent is stopping")

    # -- inputs: the engine (this node's rank of ``session``) ------------------------------

    def slice_progress(self, session: int, fraction: float, now: float) -> None:
        rank = self.ranks.get(session)
        if rank is not None:
            self._report(
                rank, m.LoadProgress(rank.offer.job_id, session, self.self_id, fraction), now
            )

    def slice_loaded(self, session: int, load_ms: float, resident: int, now: float) -> None:
        rank = self.ranks.get(session)
        if rank is not None and rank.state == "loading":
            rank.state = "ready"
            ready = m.JobReady(rank.offer.job_id, session, self.self_id, load_ms, resident)
            self._report(rank, ready, now)

    def slice_failed(self, session: int, reason: str, message: str, now: float) -> None:
        """Loading failed (or the model is not here): ``message`` may be detailed; a remote
        coordinator hears a generic one for LOAD_FAILED (no file names to a peer)."""
        rank = self.ranks.pop(session, None)
        if rank is None:
            return
        message = refused_reason(reason, message, to_peer=rank.coordinator != self.self_id)
        self._report(
            rank, m.JobLoadFailed(rank.offer.job_id, session, self.self_id, reason, message), now
        )

    def slice_token(self, session: int, token: Token, now: float) -> None:
        """A token of our rank; only the coordinator streams them (all ranks agree)."""
        coord = self.coordinations.get(session)
        if coord is not None and session in self.ranks:
            coord.token(token, now)
            self._events.append(TokenOut(session, token))

    def slice_done(self, session: int, stats: m.MemberStats, now: float) -> None:
        rank = self.ranks.pop(session, None)
        if rank is not None:
            self._report(rank, m.JobDone(rank.offer.job_id, session, stats), now)

    def slice_aborted(self, session: int, reason: str, message: str, now: float) -> None:
        """Generation failed (a collective timed out, the engine raised)."""
        rank = self.ranks.pop(session, None)
        if rank is not None:
            self._report(rank, m.JobAbort(rank.offer.job_id, session, reason, message), now)

    # -- inputs: frames from peers -------------------------------------------------------

    def receive_message(self, from_node: str, payload: bytes, now: float) -> None:
        """A CONTROL frame from an authenticated peer."""
        try:
            msg = m.decode(payload)
        except JobProtocolError as exc:
            self._drop("bad-control", str(exc))
            return
        if isinstance(msg, m.JobOffer):
            self._on_offer(from_node, msg, now)
        elif isinstance(msg, m.JobStart | m.JobAbort):
            self._on_order(from_node, msg)
        if isinstance(msg, REPORTS):
            self._on_report(from_node, msg, now)

    # -- member --------------------------------------------------------------------------

    def _on_offer(self, coordinator: str, offer: m.JobOffer, now: float) -> None:
        drop = unexpected(offer, coordinator, self.self_id, self.ranks)
        if drop is not None:
            return self._drop(drop)
        if busy(coordinator, self.ranks, self.max_runs_per_peer, self.max_runs):
            self._drop("too-many-runs")
            return self._refuse(offer, coordinator, Reason.LOAD_FAILED, BUSY)
        mismatch = ring_refusal(offer, self.ring_view() if self.ring_view is not None else None)
        if mismatch is not None:
            return self._refuse(offer, coordinator, Reason.RING_MISMATCH, mismatch)
        self._accept(offer, coordinator, now)

    def _refuse(self, offer: m.JobOffer, coordinator: str, reason: str, message: str) -> None:
        refused = m.JobLoadFailed(offer.job_id, offer.session, self.self_id, reason, message)
        self._outbox.append(Send(coordinator, m.encode(refused), offer.session))

    def _accept(self, offer: m.JobOffer, coordinator: str, now: float) -> None:
        rank = Rank(offer, coordinator)
        if coordinator != self.self_id:  # a member never waits for START forever
            rank.deadline = now + self.ready_timeout + self.done_timeout
        self.ranks[offer.session] = rank
        self._events.append(LoadSlice(offer, coordinator))

    def _on_order(self, from_node: str, msg: m.JobStart | m.JobAbort) -> None:
        rank = self.ranks.get(msg.session)
        if rank is None or rank.coordinator != from_node or rank.offer.job_id != msg.job_id:
            if isinstance(msg, m.JobStart):
                self._drop("no-such-run")
            return
        if isinstance(msg, m.JobAbort):
            self._stop(msg.session, f"{msg.reason}: {msg.message}")
        elif rank.state == "ready":
            self._start(msg.session, rank)

    def _start(self, session: int, rank: Rank) -> None:
        rank.state, rank.deadline = "running", None
        self._events.append(StartSlice(session))

    def _stop(self, session: int, reason: str) -> None:
        if self.ranks.pop(session, None) is not None:
            self._events.append(StopSlice(session, reason))

    def _report(self, rank: Rank, msg: m.Message, now: float) -> None:
        """A report of our rank: to its coordinator, or to our own coordination."""
        if rank.coordinator != self.self_id:
            self._outbox.append(Send(rank.coordinator, m.encode(msg), msg.session))
            return
        coord = self.coordinations.get(msg.session)
        if coord is not None:
            self._coordinate(coord, self.self_id, msg, now)

    # -- coordinator ---------------------------------------------------------------------

    def _on_report(self, from_node: str, msg: REPORTS, now: float) -> None:
        coord = self.coordinations.get(msg.session)
        if coord is None or coord.offer.job_id != msg.job_id or from_node not in coord.node_ids:
            if not isinstance(msg, m.JobAbort):  # an abort may be meant for a member rank
                self._drop("no-such-coordination")
            return
        claimed = (
            msg.stats.node_id if isinstance(msg, m.JobDone) else getattr(msg, "node_id", from_node)
        )
        if from_node == self.self_id or claimed != from_node:
            self._drop("node-mismatch")
        else:
            self._coordinate(coord, from_node, msg, now)

    def _coordinate(self, coord: Coordination, node: str, msg: m.Message, now: float) -> None:
        """A participant's report, already checked to come from ``node``."""
        session = coord.offer.session
        if isinstance(msg, m.LoadProgress):
            self._events.append(Progress(session, node, msg.fraction))
        elif isinstance(msg, m.JobReady):
            if node not in coord.ready_nodes:
                self._events.append(Progress(session, node, 1.0))
            if coord.ready(node, now) and coord.phase == LOADING:
                self._start_all(coord, now)
        elif isinstance(msg, m.JobLoadFailed | m.JobAbort):
            self._fail(coord, JobFailed(msg.reason, f"{node}: {msg.message}"), now)
        elif isinstance(msg, m.JobDone):
            coord.done(msg.stats)
            if node == self.self_id and coord.phase == RUNNING:
                coord.phase, coord.deadline = CLOSING, now + self.done_timeout
            if coord.phase == CLOSING and not coord.missing(coord.stats):
                self._succeed(coord)

    def _start_all(self, coord: Coordination, now: float) -> None:
        offer = coord.offer
        local = self.ranks.get(offer.session)
        if local is None or local.state != "ready":
            self._fail(coord, JobFailed(Reason.ABORTED, "the local rank ended before START"), now)
            return
        coord.phase, coord.deadline, coord.started = RUNNING, None, now
        self._broadcast(coord, m.JobStart(offer.job_id, offer.session))
        self._start(offer.session, local)

    def _fail(self, coord: Coordination, error: JobFailed, now: float, force: bool = False) -> None:
        """The first failure ends the job; once every token is known (closing), it only
        ends the wait for the members' stats, unless the caller gave up (``force``)."""
        if coord.phase == CLOSING and not force:
            self._succeed(coord, str(error))
            return
        offer = coord.offer
        coord.error = error
        del self.coordinations[offer.session]
        self._broadcast(coord, m.JobAbort(offer.job_id, offer.session, error.reason, error.message))
        self._stop(offer.session, f"{error.reason}: {error.message}")
        self._events.append(JobEnded(offer.session, error))

    def _succeed(self, coord: Coordination, note: str = "") -> None:
        del self.coordinations[coord.offer.session]
        self._events.append(JobSucceeded(coord.offer.session, coord.result(), note))

    def _broadcast(self, coord: Coordination, msg: m.Message) -> None:
        payload = m.encode(msg)
        for node in coord.remote_ids:
            self._outbox.append(Send(node, payload, coord.offer.session))

    def _drop(self, reason: str, detail: str = "") -> None:
        self.drops[reason] += 1
        self._events.append(FrameDropped(reason, detail))
