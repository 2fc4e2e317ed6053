"""Runs the Jobs this agent coordinates: tokenises the prompt, hands the job to every
ring member through the pool's JobService, and writes the Job's status as it goes
(phase, tokens as they come, then the figures). The Job controller decides when to
start; this only carries a job out."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from manifests import Job
from reconciler.inference import load_model_info
from reconciler.inference.demo import named_model_path
from reconciler.inference.errors import ModelError
from reconciler.inference.generate import TokenEvent
from reconciler.inference.sampling import SamplingParams
from reconciler.jobs import JobFailed, JobRequest
from reconciler.store import NotFound, Store

log = logging.getLogger("meshnet.jobs")

FLUSH_SECONDS = 0.05


def resolve_model(ref: str) -> Path:
    """A Job's model: a packaged model's name ('demo', 'gemma3-270m') or a path here."""
    return named_model_path(ref) or Path(ref).expanduser()


def sampling_of(job: Job) -> SamplingParams:
    spec = job.spec
    return SamplingParams(
        max_tokens=spec.max_tokens,
        temperature=spec.temperature,
        top_k=spec.top_k or 0,
        top_p=spec.top_p or 1.0,
        seed=spec.seed or 0,
        stop=tuple(spec.stop),
    )


def prompt_ids(job: Job, path: Path) -> list[int]:
    tokenizer = load_model_info(path).tokenizer
    if job.spec.messages is not None:
        messages = [m.model_dump() for m in job.spec.messages]
        return tokenizer.encode(tokenizer.apply_chat_template(messages), add_special=False)
    return tokenizer.encode(job.spec.prompt or "")


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


class JobRunner:
    """The jobs of one agent."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.runs: dict[str, RunState] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._flushed = 0.0

    def state(self, name: str) -> RunState | None:
        return self.runs.get(name)

    def start(self, job: Job, runtime: Any) -> None:
        name = job.metadata.name
        self.runs[name] = RunState()
        task = asyncio.get_running_loop().create_task(self._run(job, runtime), name=f"job-{name}")
        self._tasks[name] = task
        task.add_done_callback(lambda _: self._tasks.pop(name, None))

    async def close(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def _run(self, job: Job, runtime: Any) -> None:
        name, state = job.metadata.name, self.runs[job.metadata.name]
        try:
            path = resolve_model(job.spec.model)
            ids = await asyncio.to_thread(prompt_ids, job, path)
            ring = runtime.gossip.ring
            columns = [{"nodeId": s.node_id, "columns": [s.start, s.end]} for s in ring.members]
            scheduled = {"promptTokens": len(ids), "promptTokenIds": ids, "members": columns}
            self._patch(name, {"phase": "Scheduled", **scheduled})
            request = JobRequest(name, job.spec.model, ids, sampling_of(job), ring)
            result = await runtime.jobs.run(
                request, lambda node, fraction: self._progress(name, node, fraction),
                lambda event: self._token(name, state, event),
            )  # fmt: skip
        except JobFailed as err:
            self._fail(name, state, str(err.reason), err.message)
        except ModelError as err:
            self._fail(name, state, "ModelUnavailable", str(err))
        except asyncio.CancelledError:
            self._fail(name, state, "Interrupted", "the agent stopped while the job ran")
            raise
        except Exception as err:
            log.exception("job %s failed", name)
            self._fail(name, state, "InternalError", f"{type(err).__name__}: {err}")
        else:
            fields = _camel(result.status_fields())
            state.phase = "Succeeded"
            self._patch(
                name, {**fields, "phase": "Succeeded", "finishReason": result.finish_reason}
            )
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
        self._patch(name, {"loadProgress": progress})

    def _token(self, name: str, state: RunState, event: TokenEvent) -> None:
        if state.first_token is None:
            state.first_token = time.monotonic()
        state.phase = "Running"
        state.token_ids.append(event.token_id)
        state.text += event.text
        now = time.monotonic()
        if now - self._flushed >= FLUSH_SECONDS or event.finish_reason is not None:
            self._flushed = now
            self._patch(name, {"phase": "Running", "tokenIds": list(state.token_ids),
                               "output": state.text, "completionTokens": len(state.token_ids)})  # fmt: skip

    def _fail(self, name: str, state: RunState, reason: str, message: str) -> None:
        state.phase, state.reason, state.message = "Failed", reason, message
        log.warning("job %s failed: %s: %s", name, reason, message)
        self._patch(name, {"phase": "Failed", "failureReason": reason, "failureMessage": message})

    def _patch(self, name: str, fields: dict[str, Any]) -> None:
        try:
            self.store.patch_status("Job", name, fields)
        except NotFound:
            log.info("job %s was deleted while it ran", name)


def _camel(fields: dict[str, Any]) -> dict[str, Any]:
    def camel(key: str) -> str:
        head, *rest = key.split("_")
        return head + "".join(part.capitalize() for part in rest)

    out: dict[str, Any] = {}
    for key, value in fields.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            value = [{camel(k): v for k, v in item.items()} for item in value]
        out[camel(key)] = value
    return out
