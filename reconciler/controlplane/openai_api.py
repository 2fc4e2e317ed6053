"""The OpenAI-compatible API: ``GET /v1/models``, ``POST /v1/chat/completions`` and
``POST /v1/completions``, streamed (server-sent events in OpenAI's chunk format, ending
with ``data: [DONE]``) or not.

Each request becomes a Job of the client's pool (apijobs.py) that the local agent
queues fairly and runs on the ring; chat messages are rendered with the model's chat
template by the agent. Clients authenticate with an API key or a member certificate
(apiauth.py); errors use OpenAI's error body (apierrors.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel

from manifests import Job, Pool
from reconciler.controlplane import apijobs
from reconciler.controlplane.apiauth import ApiClient, require_client
from reconciler.controlplane.apierrors import ApiError
from reconciler.controlplane.modelcatalog import find_model, list_models
from reconciler.controlplane.openai_schemas import (
    ChatChoice,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatDelta,
    ChatMessageIn,
    ChatMessageOut,
    Completion,
    CompletionRequest,
    ModelCard,
    ModelList,
    SamplingRequest,
    TextChoice,
    Usage,
)
from reconciler.controlplane.state import AppState
from reconciler.jobcancel import request_cancel
from reconciler.singleton import running_pid
from reconciler.store import Store

router = APIRouter(prefix="/v1")
Client = Annotated[ApiClient, Depends(require_client)]
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


def _state(request: Request) -> AppState:
    state: AppState = request.app.state.meshnet
    return state


@router.get("/models", response_model=ModelList)
async def get_models(request: Request, _client: Client) -> ModelList:
    """The models this device can run: demo, and the model directory's files."""
    models = list_models(_state(request).home)
    return ModelList(data=[ModelCard(id=m.model_id, created=m.created) for m in models])


@router.get("/models/{model_id}", response_model=ModelCard)
async def get_model(model_id: str, request: Request, _client: Client) -> ModelCard:
    entry = find_model(_state(request).home, model_id)
    if entry is None:
        raise _no_model(model_id)
    return ModelCard(id=entry.model_id, created=entry.created)


@router.post("/chat/completions", response_model=ChatCompletion)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, client: Client
) -> Response:
    """A chat completion (``stream: true`` for server-sent chunks)."""
    if body.tools:
        raise ApiError(400, "tools are not supported by this server", param="tools")
    messages = [_message(m, i) for i, m in enumerate(body.messages)]
    max_tokens = body.max_completion_tokens or body.max_tokens
    store, job = _submit(request, client, body, "chat", {"messages": messages}, max_tokens)
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        stream = _chat_stream(request, store, job, body.model, include_usage)
        return StreamingResponse(_sse(store, job, stream), media_type="text/event-stream")
    final = await _wait(request, store, job)
    if final is None:
        return Response(status_code=499)
    answer = ChatCompletion(
        id=_id("chatcmpl", job), created=_created(job), model=body.model,
        choices=[ChatChoice(message=ChatMessageOut(content=final.status.output or ""),
                            finish_reason=apijobs.finish_reason(final))],
        usage=Usage(**apijobs.usage(final)),
    )  # fmt: skip
    return JSONResponse(answer.model_dump(mode="json"))


@router.post("/completions", response_model=Completion)
async def completions(body: CompletionRequest, request: Request, client: Client) -> Response:
    """A text completion of one prompt (``stream: true`` for server-sent chunks)."""
    prompt = body.prompt
    if isinstance(prompt, list):
        if len(prompt) != 1:
            raise ApiError(400, "give exactly one prompt", param="prompt")
        prompt = prompt[0]
    if body.echo or body.suffix:
        raise ApiError(400, "echo and suffix are not supported", param="echo")
    store, job = _submit(request, client, body, "cmpl", {"prompt": prompt}, body.max_tokens)
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        stream = _text_stream(request, store, job, body.model, include_usage)
        return StreamingResponse(_sse(store, job, stream), media_type="text/event-stream")
    final = await _wait(request, store, job)
    if final is None:
        return Response(status_code=499)
    answer = Completion(
        id=_id("cmpl", job), created=_created(job), model=body.model,
        choices=[TextChoice(text=final.status.output or "",
                            finish_reason=apijobs.finish_reason(final))],
        usage=Usage(**apijobs.usage(final)),
    )  # fmt: skip
    return JSONResponse(answer.model_dump(mode="json"))


def _message(message: ChatMessageIn, index: int) -> dict[str, str]:
    role = ROLES.get(message.role)
    if role is None:
        raise ApiError(
            400, f"role {message.role!r} is not supported", param=f"messages.{index}.role"
        )
    content = message.content
    if isinstance(content, list):
        if any(part.type != "text" for part in content):
            raise ApiError(400, "only text content is supported", param=f"messages.{index}.content")
        content = "".join(part.text or "" for part in content)
    return {"role": role, "content": content or ""}


def _no_model(model_id: str) -> ApiError:
    return ApiError(
        404,
        f"the model {model_id!r} does not exist here (GET /v1/models lists them)",
        param="model",
        code="model_not_found",
    )


def _pool(store: Store, client: ApiClient) -> str:
    pools = [p.metadata.name for p in store.list("Pool") if isinstance(p, Pool)]
    if client.pool is not None:
        if client.pool not in pools:
            raise ApiError(400, f"the pool {client.pool!r} is not on this device", code="no_pool")
        return client.pool
    if len(pools) != 1:
        problem = "has no pool" if not pools else "has several pools: make the key with --pool"
        raise ApiError(400, f"this device {problem}", code="no_pool")
    return pools[0]


def _submit(
    request: Request,
    client: ApiClient,
    body: SamplingRequest,
    kind: str,
    inputs: dict[str, Any],
    max_tokens: int | None,
) -> tuple[Store, Job]:
    """Check the request, then store it as a Job; (the store, the created job)."""
    if (body.n or 1) > 1:
        raise ApiError(400, "only n=1 is supported", param="n")
    if body.logprobs:
        raise ApiError(400, "logprobs are not supported", param="logprobs")
    state = _state(request)
    entry = find_model(state.home, body.model)
    if entry is None:
        raise _no_model(body.model)
    if not running_pid(state.home.agent_lock):
        raise ApiError(503, "no agent runs on this device (start it with `mesh start`)",
                       "server_error", code="no_agent")  # fmt: skip
    store = state.store()
    spec = {**inputs, **apijobs.sampling_spec(body, max_tokens)}
    job = apijobs.build_job(apijobs.job_name(kind), _pool(store, client), entry.ref,
                            client.client_id, spec)  # fmt: skip
    created, _ = store.apply(job)
    assert isinstance(created, Job)
    return store, created


async def _wait(request: Request, store: Store, job: Job) -> Job | None:
    """The finished job, or None when the client went away (the job is cancelled)."""
    final = job
    socket = _state(request).home.agent_socket
    gone = apijobs.disconnected(request.receive)
    try:
        async for update in apijobs.follow(socket, store, job.metadata.name, gone):
            final = update.job
    except apijobs.ClientGone:
        return None
    if final.status.phase == "Failed":
        raise apijobs.failure(final)
    return final


def _id(prefix: str, job: Job) -> str:
    return f"{prefix}-{job.metadata.name}"


def _created(job: Job) -> int:
    stamp = job.metadata.creation_timestamp
    return int(stamp.timestamp()) if stamp is not None else int(time.time())


def _data(model: BaseModel | dict[str, Any]) -> str:
    doc = model.model_dump(mode="json") if isinstance(model, BaseModel) else model
    return f"data: {json.dumps(doc, separators=(',', ':'))}\n\n"


async def _sse(store: Store, job: Job, chunks: AsyncIterator[str]) -> AsyncIterator[str]:
    """The stream's events, then ``[DONE]``; a job failure becomes an error event, and
    a stream that ends early (the client went away) cancels the job."""
    done = False
    try:
        async for chunk in chunks:
            yield chunk
        done = True
    except apijobs.ClientGone:
        done = True
        return
    except ApiError as err:
        done = True
        yield _data(err.body())
    finally:
        if not done:
            request_cancel(store, job.metadata.name, "the API client disconnected")
    yield "data: [DONE]\n\n"


async def _chat_stream(
    request: Request, store: Store, job: Job, model: str, include_usage: bool
) -> AsyncIterator[str]:
    def chunk(delta: ChatDelta, finish: str | None = None) -> str:
        choice = ChatChunkChoice(delta=delta, finish_reason=finish)
        return _data(ChatCompletionChunk(id=_id("chatcmpl", job), created=_created(job),
                                         model=model, choices=[choice]))  # fmt: skip

    yield chunk(ChatDelta(role="assistant", content=""))
    async for update in apijobs.follow(_state(request).home.agent_socket, store, job.metadata.name):
        if update.delta:
            yield chunk(ChatDelta(content=update.delta))
        if update.finished:
            if update.job.status.phase == "Failed":
                raise apijobs.failure(update.job)
            yield chunk(ChatDelta(), apijobs.finish_reason(update.job))
            if include_usage:
                yield _data(ChatCompletionChunk(
                    id=_id("chatcmpl", job), created=_created(job), model=model, choices=[],
                    usage=Usage(**apijobs.usage(update.job))))  # fmt: skip


async def _text_stream(
    request: Request, store: Store, job: Job, model: str, include_usage: bool
) -> AsyncIterator[str]:
    def chunk(text: str, finish: str | None = None, usage: Usage | None = None) -> str:
        choices = [] if usage else [TextChoice(text=text, finish_reason=finish)]
        return _data(Completion(id=_id("cmpl", job), created=_created(job), model=model,
                                choices=choices, usage=usage))  # fmt: skip

    async for update in apijobs.follow(_state(request).home.agent_socket, store, job.metadata.name):
        if update.delta:
            yield chunk(update.delta)
        if update.finished:
            if update.job.status.phase == "Failed":
                raise apijobs.failure(update.job)
            yield chunk("", apijobs.finish_reason(update.job))
            if include_usage:
                yield chunk("", usage=Usage(**apijobs.usage(update.job)))
