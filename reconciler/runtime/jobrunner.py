"""Runs the Jobs this agent coordinates: tokenises the prompt, hands the job to every
ring member through the pool's JobService, and writes the Job's status as it goes
(phase, tokens as they come, then the figures). The Job controller decides when to
start; this only carries a job out."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from manifests import Job
from manifests.job import JobStatus
from reconciler.controllers.jobqueue import CLIENT_ANNOTATION
from reconciler.gossip.ring import Ring
from reconciler.home import Home
from reconciler.inference.chattemplate import ChatTemplateError
from reconciler.inference.errors import ModelError
from reconciler.inference.generate import TokenEvent
from reconciler.inference.kernels import default_activations
from reconciler.inference.q80reduce import default_wire, resolve_wire
from reconciler.inference.sampling import SamplingParams
from reconciler.jobs.errors import JobFailed, Reason
from reconciler.jobs.prompts import prompt_ids
from reconciler.jobs.results import JobRequest, layout_note, plan_status
from reconciler.jobs.service import JobService
from reconciler.models import (
    SUBMITTED_BY,
    ModelRefused,
    job_model,
    offered_name,
)
from reconciler.runtime.jobfeed import Follower, JobFeed, phase_event, token_event
from reconciler.store import NotFound, Store

log = logging.getLogger("meshnet.jobs")

FLUSH_SECONDS = 0.05  # tokens to the store (volatile) while nobody follows over the local API
FOLLOWED_FLUSH_SECONDS = 1.0  # ... and while someone does (they get every token pushed)
MISSING_MODEL_HINT = (
    " (members open only models they keep: put the model file, or a symlink to it, in"
    " ~/.meshnet/models on every member, or in a folder of MESHNET_MODEL_DIRS)"
)


class _Device(Protocol):
    @property
    def home(self) -> Home: ...


class _Membership(Protocol):
    @property
    def ring(self) -> Ring | None: ...


class JobHost(Protocol):
    """What a job needs of its pool's runtime (``PoolRuntime``): the device's home, the
    pool's job service and its current ring."""

    @property
    def ctx(self) -> _Device: ...

    @property
    def jobs(self) -> JobService | None: ...

    @property
    def gossip(self) -> _Membership: ...


def sampling_of(job: Job) -> SamplingParams:
    spec = job.spec
    return SamplingParams(
        max_tokens=spec.max_tokens,
        temperature=spec.temperature,
        top_k=spec.top_k or 0,
        top_p=spec.top_p or 1.0,
        seed=spec.seed or 0,
        stop=tuple(spec.stop),
        presence_penalty=spec.presence_penalty,
        frequency_penalty=spec.frequency_penalty,
        repetition_penalty=spec.repetition_penalty,
        draft_tokens=spec.draft_tokens,
    )


def wire_of(activations: str | None, asked: str = "auto") -> str:
    """The all-reduce wire format this coordinator offers: the Job's ``spec.wire``, else
    ``MESHNET_WIRE`` (default ``auto``: q80 with int8 activations, f32 with exact ones)."""
    wire = asked if asked != "auto" else default_wire()
    return resolve_wire(wire, activations or default_activations())


@dataclass
class RunState:
    """What the runner knows of one job it carries out."""

    phase: str = "Scheduled"
    reason: str = ""
    message: str = ""
    token_ids: list[int] = field(default_factory=list)
    text: str = ""
    started: float = field(default_factory=time.monotonic)
    first_token: float | None = None
    cancelled: str | None = None  # why, when the job was cancelled
    flushed: float = 0.0  # when tokens were last written to the store (monotonic)
    running_stored: bool = False  # phase Running is in the store (later flushes: volatile)


class JobRunner:
    """The jobs of one agent."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.clock = clock
        self.runs: dict[str, RunState] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.feed = JobFeed()
        self.last_start: dict[tuple[str, str], float] = {}  # (pool, client) -> monotonic

    def state(self, name: str) -> RunState | None:
        return self.runs.get(name)

    def follow(self, name: str) -> Follower:
        """A follower of job ``name`` (running, finished or not started yet): a snapshot
        of what this runner knows of it, then every token and phase as they happen."""
        state = self.runs.get(name)
        snapshot: dict[str, Any] = {"event": "snapshot", "phase": None, "tokens": [], "text": ""}
        if state is not None:
            snapshot.update(phase=state.phase, tokens=list(state.token_ids), text=state.text)
            if state.reason:
                snapshot.update(reason=state.reason, message=state.message)
        return self.feed.subscribe(name, snapshot)

    def start(self, job: Job, runtime: JobHost) -> None:
        name = job.metadata.name
        self.runs[name] = RunState()
        client = job.metadata.annotations.get(CLIENT_ANNOTATION, "")
        self.last_start[(job.spec.pool, client)] = time.monotonic()
        task = asyncio.get_running_loop().create_task(self._run(job, runtime), name=f"job-{name}")
        self._tasks[name] = task
        task.add_done_callback(lambda _: self._tasks.pop(name, None))

    def cancel(self, name: str, reason: str) -> bool:
        """Stop a job this runner carries out (Failed, reason Cancelled); whether it ran."""
        state, task = self.runs.get(name), self._tasks.get(name)
        if state is None or task is None or state.phase not in ("Scheduled", "Running"):
            return False
        state.cancelled = reason
        self._fail(name, state, "Cancelled", f"cancelled: {reason}")
        task.cancel()
        return True

    async def finished(self, name: str) -> None:
        """Return once job ``name`` is no longer carried out here."""
        task = self._tasks.get(name)
        if task is not None:
            await asyncio.wait({task})

    async def close(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def _run(self, job: Job, runtime: JobHost) -> None:
        name, state = job.metadata.name, self.runs[job.metadata.name]
        try:
            submitted = SUBMITTED_BY in job.metadata.annotations
            jobs, ring = runtime.jobs, runtime.gossip.ring
            if jobs is None or ring is None:
                raise JobFailed(Reason.NOT_IN_RING, "the pool's ring has not formed here")
            path = job_model(job.spec.model, runtime.ctx.home, submitted)
            ids = await asyncio.to_thread(prompt_ids, job, path, jobs.cache)
            columns = [{"nodeId": s.node_id, "columns": [s.start, s.end]} for s in ring.members]
            scheduled = {"promptTokens": len(ids), "promptTokenIds": ids, "members": columns}
            self._patch(name, {"phase": "Scheduled", **scheduled})
            self.feed.publish(name, phase_event("Scheduled"))
            offered = offered_name(job.spec.model, path)  # members look the name up
            request = JobRequest(name, offered, ids, sampling_of(job), ring, str(path),
                                 wire_of(jobs.cache.activations, job.spec.wire),
                                 job.spec.parallelism)  # fmt: skip
            result = await jobs.run(
                request, lambda node, fraction: self._progress(name, node, fraction),
                lambda event: self._token(name, state, event),
                lambda plan, wire: self._patch(name, {"plan": plan_status(plan, wire)}),
            )  # fmt: skip
        except JobFailed as err:
            hint = MISSING_MODEL_HINT if err.reason == Reason.MODEL_NOT_FOUND else ""
            self._fail(name, state, str(err.reason), err.message + hint)
        except (ModelError, ModelRefused) as err:
            self._fail(name, state, "ModelUnavailable", str(err))
        except ChatTemplateError as err:
            self._fail(name, state, "InvalidPrompt", str(err))
        except asyncio.CancelledError:
            if state.cancelled is not None:
                return  # cancel() recorded it
            self._fail(name, state, "Interrupted", "the agent stopped while the job ran")
            raise
        except Exception as err:
            log.exception("job %s failed", name)
            self._fail(name, state, "InternalError", f"{type(err).__name__}: {err}")
        else:
            if state.cancelled is not None:
                return
            state.phase = "Succeeded"
            fields = {**result.status_fields(), "finish_reason": result.finish_reason}
            self._patch(name, JobStatus.patch(**fields, phase="Succeeded"))
            self.feed.publish(name, phase_event("Succeeded"))
            note = layout_note(result.members, jobs.cache.default_layout())
            if note is not None:
                self.store.record_event("Job", name, "Normal", "MemberLayouts", note)
            log.info(
                "job %s: %d tokens at %.1f tok/s",
                name,
                result.completion_tokens,
                result.tokens_per_second or 0,
            )

    def _progress(self, name: str, node: str, fraction: float) -> None:
        obj = self.store.get("Job", name)
        progress = dict(getattr(obj.status, "load_progress", None) or {}) if obj else {}
        progress[node] = round(fraction, 3)
        self._patch(name, {"loadProgress": progress}, volatile=True)
        self.feed.publish(name, {"event": "progress", "node": node, "fraction": progress[node]})

    def _token(self, name: str, state: RunState, event: TokenEvent) -> None:
        if state.cancelled is not None:
            return
        now = self.clock()
        if state.first_token is None:
            state.first_token = now
            state.phase = "Running"
            self.feed.publish(name, phase_event("Running"))
        state.token_ids.append(event.token_id)
        state.text += event.text
        self.feed.publish(name, token_event(event.index, event.token_id, event.text, now))
        every = FOLLOWED_FLUSH_SECONDS if self.feed.followed(name) else FLUSH_SECONDS
        if now - state.flushed >= every or event.finish_reason is not None:
            state.flushed = now  # written once the followers have their token (a write takes ms)
            asyncio.get_running_loop().call_soon(self._flush, name, state)

    def _flush(self, name: str, state: RunState) -> None:
        if state.phase != "Running":
            return  # ended meanwhile: its final status holds every token
        self._patch(name, {"phase": "Running", "tokenIds": list(state.token_ids),
                           "output": state.text, "completionTokens": len(state.token_ids)},
                    volatile=state.running_stored)  # fmt: skip
        state.running_stored = True  # the phase change wakes watchers; tokens do not

    def _fail(self, name: str, state: RunState, reason: str, message: str) -> None:
        if state.cancelled is not None and reason != "Cancelled":
            return  # the cancellation is the story
        state.phase, state.reason, state.message = "Failed", reason, message
        log.warning("job %s failed: %s: %s", name, reason, message)
        self._patch(name, {"phase": "Failed", "failureReason": reason, "failureMessage": message})
        self.feed.publish(name, phase_event("Failed", reason, message))

    def _patch(self, name: str, fields: dict[str, Any], volatile: bool = False) -> None:
        """Write status fields; ``volatile`` ones (tokens as they stream, load progress)
        keep the Job's resourceVersion: they wake no controller (followers get them
        pushed through the feed)."""
        try:
            if volatile:
                self.store.patch_volatile("Job", name, fields)
            else:
                self.store.patch_status("Job", name, fields)
        except NotFound:
            log.info("job %s was deleted while it ran", name)
