"""The web dashboard and /metrics, served by the control plane.

``GET /dashboard`` is a static page (``dashboard_static/``: HTML, CSS and one vanilla
script; no build step) that holds no data itself. What it shows comes from

- ``GET /v1/dashboard/state``: one snapshot of the viewer's pools (members, ring, jobs);
- ``GET /v1/dashboard/stream``: server-sent events, a ``snapshot`` on every change of
  the store and every token of a running job, as the agent pushes them (dashfeed.py),
  so answers stream as the agent produces them;
- ``POST /v1/dashboard/chat``: a chat turn becomes a Job (``messages``, the model's chat
  template), whose output then streams through the snapshots;
- ``GET /metrics``: Prometheus text format (metrics.py, its own router, so that any app
  over a home's store can serve it).

Each needs a viewer (dashboard_auth.py): the same credentials as the API.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from pydantic import BaseModel, Field, ValidationError

from manifests import Job
from reconciler.controlplane.dashboard_auth import Viewer, require_viewer
from reconciler.controlplane.dashfeed import DashFeed, snapshots
from reconciler.controlplane.snapshot import pool_snapshot
from reconciler.controlplane.state import AppState
from reconciler.store import Store

router = APIRouter()
Seen = Annotated[Viewer, Depends(require_viewer)]
STATIC = {"app.js": "text/javascript", "style.css": "text/css"}
KEEPALIVE_SECONDS = 15.0


def _state(request: Request) -> AppState:
    state: AppState = request.app.state.meshnet
    return state


def _static(name: str) -> str:
    return resources.files("reconciler.controlplane").joinpath("dashboard_static", name).read_text()


@router.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
def page() -> HTMLResponse:
    """The page (no data in it: the script asks for the key, then calls the API)."""
    return HTMLResponse(_static("index.html"))


@router.get("/dashboard/{name}", include_in_schema=False)
def static(name: str) -> Response:
    if name not in STATIC:
        raise HTTPException(404, f"no {name} here")
    return Response(_static(name), media_type=STATIC[name])


@router.get("/v1/dashboard/state")
def state(request: Request, viewer: Seen) -> dict[str, Any]:
    """The viewer's pools: members, ring, jobs."""
    return _snapshot(_state(request), viewer)


@router.get("/v1/dashboard/stream", response_class=StreamingResponse)
def stream(request: Request, viewer: Seen) -> StreamingResponse:
    """Server-sent events: a `snapshot` now and on every change of the store."""
    return StreamingResponse(_follow(request, viewer), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store"})  # fmt: skip


class ChatTurn(BaseModel):
    """A chat box message: the conversation so far, ending with the user's turn."""

    messages: list[dict[str, str]] = Field(min_length=1, max_length=200)
    max_tokens: int = Field(default=128, ge=1, le=4096, alias="maxTokens")
    model: str = Field(default="demo", max_length=4096)
    pool: str | None = Field(default=None, max_length=63)


@router.post("/v1/dashboard/chat", status_code=201)
def chat(turn: ChatTurn, request: Request, viewer: Seen) -> dict[str, str]:
    """Start a Job for the chat turn; its output streams in the snapshots."""
    pools = viewer.pools(_state(request))
    pool = turn.pool or (pools[0] if pools else None)
    if pool is None or pool not in pools:
        raise HTTPException(403, f"no pool {turn.pool or ''} for this viewer".replace("  ", " "))
    name = f"chat-{secrets.token_hex(4)}"
    try:
        job = Job.model_validate({
            "metadata": {"name": name, "labels": {"meshnet.dev/source": "dashboard"}},
            "spec": {"pool": pool, "messages": turn.messages, "maxTokens": turn.max_tokens,
                     "model": turn.model},
        })  # fmt: skip
    except ValidationError as err:
        raise HTTPException(422, "each message is {role: system|user|assistant, content}") from err
    _state(request).store().apply(job)
    return {"job": name, "pool": pool}


def _snapshot(state_: AppState, viewer: Viewer) -> dict[str, Any]:
    store: Store = state_.store()
    ids = {p.name: p.anchor.pool_id for p in state_.pools}
    return {"pools": [pool_snapshot(store, name, ids[name]) for name in viewer.pools(state_)]}


async def _follow(request: Request, viewer: Viewer) -> AsyncIterator[str]:
    state_ = _state(request)
    feed = DashFeed(state_.home.agent_socket, state_.store())
    async for snapshot in snapshots(feed, lambda: _snapshot(state_, viewer), KEEPALIVE_SECONDS):
        if snapshot is None:
            yield ": keepalive\n\n"
        else:
            yield f"event: snapshot\ndata: {json.dumps(snapshot, separators=(',', ':'))}\n\n"
