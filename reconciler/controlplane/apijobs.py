"""From an API request to a Job and back: build the Job, follow its text as the agent
writes it, and cancel it when the client goes away.

Every request is a Job in the store (``meshctl get jobs`` lists it), annotated with
its client (``meshnet.dev/client``) so the agent's queue serves clients fairly
(controllers/jobqueue.py), and deleted ``API_JOB_TTL_SECONDS`` after it finished (its
``ttlSecondsAfterFinished``), so a busy API does not fill the store. ``follow`` yields
the new text as the agent pushes it (jobwatch.py: no polling while the agent answers);
when the client disconnects it annotates the Job ``meshnet.dev/cancel`` (the agent
stops it: phase Failed, reason Cancelled) and raises ``ClientGone``.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.types import Message

from manifests import Job
from reconciler.controllers.jobqueue import CLIENT_ANNOTATION
from reconciler.controlplane.apierrors import ApiError
from reconciler.controlplane.jobwatch import JobNews, job_news
from reconciler.controlplane.openai_schemas import DEFAULT_MAX_TOKENS, SamplingRequest
from reconciler.jobcancel import request_cancel
from reconciler.store import Store

API_JOB_TTL_SECONDS = 3600  # an API request's Job is deleted an hour after it finished
FINAL = ("Succeeded", "Failed")
FINISH_REASONS = {"eos": "stop", "stop": "stop", "length": "length"}
# Job failure reason -> (HTTP status, OpenAI error type)
FAILURES = {
    "InvalidPrompt": (400, "invalid_request_error"),
    "ModelUnavailable": (404, "invalid_request_error"),
    "Cancelled": (499, "invalid_request_error"),
}


class ClientGone(Exception):
    """The client disconnected; its job was cancelled."""


def job_name(kind: str) -> str:
    """A fresh Job name such as ``chat-20260701-093000-1a2b3c``."""
    return f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


def sampling_spec(req: SamplingRequest, max_tokens: int | None) -> dict[str, Any]:
    """The Job spec fields of a request's sampling settings (OpenAI's defaults)."""
    spec: dict[str, Any] = {
        "maxTokens": max_tokens or DEFAULT_MAX_TOKENS,
        "temperature": 1.0 if req.temperature is None else req.temperature,
        "stop": req.stops(),
        "presencePenalty": req.presence_penalty or 0.0,
        "frequencyPenalty": req.frequency_penalty or 0.0,
        "repetitionPenalty": req.repetition_penalty or 1.0,
    }
    if req.top_p is not None and req.top_p < 1.0:
        spec["topP"] = req.top_p
    if req.top_k is not None:
        spec["topK"] = req.top_k
    if req.seed is not None:
        spec["seed"] = req.seed % 2**63
    return spec


def build_job(name: str, pool: str, model_ref: str, client: str, spec: dict[str, Any]) -> Job:
    document = {
        "metadata": {"name": name, "annotations": {CLIENT_ANNOTATION: client}},
        "spec": {
            "pool": pool,
            "model": model_ref,
            "ttlSecondsAfterFinished": API_JOB_TTL_SECONDS,
            **spec,
        },
    }
    return Job.model_validate(document)


@dataclass(frozen=True)
class Update:
    """New text of a job, and the job as last read."""

    delta: str
    job: Job

    @property
    def finished(self) -> bool:
        return self.job.status.phase in FINAL


async def follow(
    socket: Path, store: Store, name: str, gone: Awaitable[object] | None = None
) -> AsyncIterator[Update]:
    """The job's new text as it comes, until it finishes (see the module docstring)."""
    news = job_news(socket, store, name)
    watcher = asyncio.ensure_future(gone) if gone is not None else None
    sent = 0
    try:
        while True:
            now = await _next(news, watcher)
            if now is None:
                request_cancel(store, name, "the API client disconnected")
                raise ClientGone(name)
            if now.job is None:
                raise ApiError(500, f"job {name} was deleted", "server_error")
            if len(now.text) > sent or now.ended:
                yield Update(now.text[sent:], now.job)
                sent = max(sent, len(now.text))
            if now.ended:
                return
    finally:
        if watcher is not None:
            watcher.cancel()
        await news.aclose()


async def _next(
    news: AsyncIterator[JobNews], gone: asyncio.Future[Any] | None
) -> JobNews | None:
    """The next news of the job, or None once ``gone`` happened first."""
    step = asyncio.ensure_future(anext(news))
    try:
        await asyncio.wait({step} if gone is None else {step, gone},
                           return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
    finally:
        if not step.done():  # the client went away (or this stream is cancelled)
            step.cancel()
            await asyncio.gather(step, return_exceptions=True)
    return None if step.cancelled() else step.result()


async def disconnected(receive: Callable[[], Awaitable[Message]]) -> None:
    """Return once the HTTP client went away (its request body read already)."""
    while (await receive())["type"] != "http.disconnect":
        pass


def finish_reason(job: Job) -> str:
    return FINISH_REASONS.get(str(job.status.finish_reason), "stop")


def failure(job: Job) -> ApiError:
    """The API error of a failed job."""
    reason = job.status.failure_reason or "Failed"
    message = job.status.failure_message or "the job failed"
    status, type_ = FAILURES.get(reason, (500, "server_error"))
    return ApiError(status, f"job {job.metadata.name}: {reason}: {message}", type_, code=reason)


def usage(job: Job) -> dict[str, int]:
    prompt = job.status.prompt_tokens or 0
    completion = job.status.completion_tokens or len(job.status.token_ids)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}  # fmt: skip
