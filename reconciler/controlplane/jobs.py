"""Jobs over HTTP: submit, list, get, and follow one as server-sent events.

``GET /v1/jobs/{name}/events`` streams ``text/event-stream``: ``status`` (phase and
conditions, on every change), ``token`` (``{index, id, output}`` for each new token
id the agent writes to ``status.tokenIds``, with the output so far), and a final
``end`` (phase Succeeded or Failed) or ``deleted``. The agent pushes each change over
its local API (jobwatch.py): a token reaches the client as the job runner produces it,
with no polling step. Streams are capped
per caller and in total (429 beyond) and last at most ``STREAM_SECONDS`` (limits.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import ConfigDict

from manifests import Job, to_document
from reconciler.controlplane.auth import Caller, require_member
from reconciler.controlplane.jobwatch import job_news
from reconciler.controlplane.limits import STREAM_SECONDS, StreamSlots
from reconciler.controlplane.state import AppState
from reconciler.home import Home
from reconciler.jobs.errors import Reason
from reconciler.jobs.prompts import job_prompt_problem
from reconciler.models import SUBMITTED_BY, is_model_name
from reconciler.observed import ring_key
from reconciler.store import Conflict, Store

router = APIRouter(prefix="/v1/jobs")
Member = Annotated[Caller, Depends(require_member)]
JobName = Annotated[str, Path(max_length=63, pattern=r"^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$")]
Wait = Annotated[
    float, Query(ge=0.0, le=STREAM_SECONDS, description="Longest the stream lasts (s).")
]
CHECK_SECONDS = 3.0  # longest a submission waits for the prompt check
_CHECKS = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prompt-check")
log = logging.getLogger("meshnet.control-plane")


# The body of POST /v1/jobs: a Job (same name and schema), built with the app rather than
# deferred, since FastAPI validates a deferred model outside its filter of pydantic's alias
# warning (UnsupportedFieldAttributeWarning "alias ... 'job'").
if TYPE_CHECKING:
    Submitted = Job
else:
    Submitted = type("Job", (Job,), {"__doc__": Job.__doc__, "__module__": __name__,
                                     "model_config": ConfigDict(defer_build=False)})  # fmt: skip


def _store(request: Request) -> Store:
    state: AppState = request.app.state.meshnet
    return state.store()


def _job(store: Store, caller: Caller, name: str) -> Job:
    obj = store.get("Job", name)
    if not isinstance(obj, Job) or obj.spec.pool != caller.pool.name:
        raise HTTPException(404, f'job "{name}" not found in pool {caller.pool.name}')
    return obj


@router.post("", status_code=201)
def submit(job: Submitted, request: Request, caller: Member) -> dict[str, Any]:
    """Create a Job (its status is ignored); 409 if one of that name exists, 422 if its
    prompt + maxTokens is beyond the model's context or a job frame limit."""
    if job.spec.pool != caller.pool.name:
        raise HTTPException(403, f"you are a member of {caller.pool.name}, not {job.spec.pool}")
    if not is_model_name(job.spec.model):
        raise HTTPException(422, "model must be 'demo' or the name of a model in the admin's "
                                 "model folders (MESHNET_HOME/models), not a path")  # fmt: skip
    job.metadata.annotations[SUBMITTED_BY] = caller.cert.node_id  # resolved by name only
    store = _store(request)
    if store.get("Job", job.metadata.name) is not None:
        raise HTTPException(409, f'job "{job.metadata.name}" already exists')
    problem = _prompt_problem(store, job, request.app.state.meshnet.home)
    if problem is not None:
        raise HTTPException(422, f"{Reason.PROMPT_TOO_LONG}: {problem}")
    try:
        created, _ = store.apply(job)
    except Conflict as err:
        raise HTTPException(409, str(err)) from err
    return to_document(created)


def _prompt_problem(store: Store, job: Job, home: Home) -> str | None:
    """Why the Job's prompt cannot run, if that is known within CHECK_SECONDS. Reading a
    large GGUF's metadata the first time can take longer on a busy device: the Job is then
    accepted, the read goes on (later submissions find it cached) and the agent refuses
    the Job (PromptTooLong) before any member loads anything."""
    ring = store.get_observed(ring_key(job.spec.pool)) or {}
    members = max(len(ring.get("members") or []), 1)
    check = _CHECKS.submit(job_prompt_problem, job, members, home)
    try:
        return check.result(timeout=CHECK_SECONDS)
    except TimeoutError:
        log.info("job %s: the prompt check goes on; the agent checks too", job.metadata.name)
        return None


@router.get("")
def list_jobs(request: Request, caller: Member) -> dict[str, Any]:
    """Every Job of the caller's pool."""
    found = [j for j in _store(request).list("Job") if isinstance(j, Job)]
    return {"items": [to_document(j) for j in found if j.spec.pool == caller.pool.name]}


@router.get("/{name}")
def get_job(name: JobName, request: Request, caller: Member) -> dict[str, Any]:
    return to_document(_job(_store(request), caller, name))


@router.get("/{name}/events", response_class=StreamingResponse)
def job_events(
    name: JobName, request: Request, caller: Member, wait: Wait = 600.0
) -> StreamingResponse:
    """Server-sent events: status changes and generated tokens as they come (the stream
    ends with ``end`` when the job does, or ``timeout`` after ``wait`` seconds)."""
    _job(_store(request), caller, name)
    slots: StreamSlots = request.app.state.streams
    slot = slots.acquire(caller.cert.node_id)
    if slot is None:
        raise HTTPException(429, "too many event streams open; close one or try later")
    return StreamingResponse(
        _released(_follow(request, name, wait), lambda: slots.release(slot)),
        media_type="text/event-stream",
    )


async def _released(events: AsyncIterator[str], release: Callable[[], None]) -> AsyncIterator[str]:
    try:
        async for event in events:
            yield event
    finally:
        release()


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


async def _follow(request: Request, name: str, wait: float) -> AsyncIterator[str]:
    state: AppState = request.app.state.meshnet
    news = job_news(state.home.agent_socket, state.store(), name)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    phase, sent, first = "", 0, True
    try:
        while True:
            try:
                now = await asyncio.wait_for(anext(news), max(0.0, deadline - loop.time()))
            except TimeoutError:
                yield _sse("timeout", {"phase": phase or None})
                return
            if now.job is None:
                yield _sse("deleted", {"name": name})
                return
            if (now.phase or "") != phase or first:
                phase, first = now.phase or "", False
                conditions = [c.model_dump(mode="json", by_alias=True)
                              for c in now.job.status.conditions]  # fmt: skip
                yield _sse("status", {"phase": phase or None, "conditions": conditions})
            for index in range(sent, len(now.token_ids)):
                yield _sse(
                    "token", {"index": index, "id": now.token_ids[index], "output": now.text}
                )
            sent = max(sent, len(now.token_ids))
            if now.ended:
                yield _sse("end", {"phase": phase, "output": now.text})
                return
    finally:
        await news.aclose()
