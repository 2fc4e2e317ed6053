"""The control plane's HTTP API (FastAPI): ``create_app(home)``.

Anonymous clients get ``GET /healthz``, ``GET /v1/join/root`` (a pool's public root
certificate, as beacons carry it) and ``POST /v1/join`` (authenticated by a join
token proof). Everything else, the OpenAPI document included, needs a client
certificate of a served pool (mutual TLS): ``/v1/pool``, ``/v1/peers``, ``/v1/ring``,
the jobs of the caller's pool and ``POST /v1/rendezvous`` (rendezvous.py). Errors are
JSON ``{"error": "..."}`` (422 adds ``problems``: one ``{loc, msg}`` per invalid
field); client input never causes a 500. The web dashboard's data and ``/metrics``
are in dashboard.py and metrics.py.
The OpenAI-compatible routes (openai_api.py: ``/v1/models``, ``/v1/chat/completions``,
``/v1/completions``) take a member certificate or an API key, and answer errors in
OpenAI's body (apierrors.py).
"""

from __future__ import annotations

import base64
import time
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from manifests import to_document
from reconciler.controlplane import apierrors, dashboard, jobs, metrics, openai_api, rendezvous
from reconciler.controlplane.auth import Caller, require_member
from reconciler.controlplane.joining import JoinRequest, JoinResponse, join
from reconciler.controlplane.limits import BodyLimit, StreamSlots
from reconciler.controlplane.state import AppState
from reconciler.drivers.service_tls import ServedPool, default_ca_files, load_served_pools
from reconciler.home import Home

Member = Annotated[Caller, Depends(require_member)]
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Bad request"},
    401: {"description": "No client certificate"},
    403: {"description": "Refused"},
    404: {"description": "Not found"},
    422: {"description": "Invalid request"},
}


def create_app(home: Home, pools: list[ServedPool] | None = None, api_lan: bool = False) -> FastAPI:
    """The API over a home's store, for its pools (default: every pools/*/ca.crt).
    API keys are accepted from this device only, unless ``api_lan``."""
    if pools is None:
        pools = load_served_pools(home, "controlplane", default_ca_files(home), time.time())
    app = FastAPI(
        title="meshnet control plane",
        version="v1",
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        responses=ERRORS,
    )
    app.state.meshnet = AppState(home, pools, api_keys_from_lan=api_lan)
    app.state.streams = StreamSlots()
    app.add_middleware(BodyLimit)
    _error_handlers(app)
    _routes(app)
    app.include_router(jobs.router)
    app.include_router(rendezvous.router)
    app.include_router(openai_api.router)
    app.include_router(dashboard.router)
    app.include_router(metrics.router)
    return app


def create_api_app(home: Home) -> FastAPI:
    """Only the OpenAI-compatible API (served by the agent with ``--api-port``, over plain
    HTTP: API keys only, no member certificates)."""
    app = FastAPI(title="meshnet OpenAI-compatible API", version="v1", docs_url=None,
                  redoc_url=None, openapi_url=None)  # fmt: skip
    app.state.meshnet = AppState(home, [])
    app.state.streams = StreamSlots()
    app.add_middleware(BodyLimit)
    _error_handlers(app)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(openai_api.router)
    return app


def _state(request: Request) -> AppState:
    state: AppState = request.app.state.meshnet
    return state


def _routes(app: FastAPI) -> None:
    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/openapi.json", include_in_schema=False)
    def openapi(_caller: Member) -> dict[str, Any]:
        return app.openapi()

    @app.post("/v1/join", response_model=JoinResponse, response_model_by_alias=True)
    def post_join(body: JoinRequest, request: Request) -> JoinResponse:
        """A member certificate for a token holder (see joining.py)."""
        return join(_state(request), body, source=request.client.host if request.client else "")

    @app.get("/v1/join/root")
    def join_root(
        request: Request, pool_id: Annotated[str, Query(alias="poolId", max_length=64)]
    ) -> dict[str, str]:
        """The public root certificate of a pool (checked by the joiner against its pin)."""
        pool = _state(request).pool_by_id(pool_id)
        if pool is None:
            raise HTTPException(404, f"no pool {pool_id} here")
        return {"rootCertificate": base64.b64encode(pool.anchor.cert_der).decode()}

    @app.get("/v1/pool")
    def get_pool(request: Request, caller: Member) -> dict[str, Any]:
        """The caller's pool: its identity and its Pool object, if this device has one."""
        obj = _state(request).store().get("Pool", caller.pool.name)
        return {
            "name": caller.pool.name,
            "poolId": caller.pool.anchor.pool_id,
            "rootFingerprint": caller.pool.anchor.fingerprint,
            "object": None if obj is None else to_document(obj),
        }

    @app.get("/v1/peers")
    def get_peers(request: Request, caller: Member) -> dict[str, Any]:
        """The peers the agent observes (nodeId, name, address, status, lastSeen, route)."""
        items = _state(request).store().get_observed(f"peers/{caller.pool.name}")
        return {"pool": caller.pool.name, "items": items if isinstance(items, list) else []}

    @app.get("/v1/ring")
    def get_ring(request: Request, caller: Member) -> dict[str, Any]:
        """The ring topology the agent observes (null before the agent published one)."""
        ring = _state(request).store().get_observed(f"ring/{caller.pool.name}")
        return {"pool": caller.pool.name, "ring": ring}


def _error_handlers(app: FastAPI) -> None:
    apierrors.install(app)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if apierrors.is_openai_path(request.url.path):
            return apierrors.ApiError(exc.status_code, str(exc.detail)).response()
        return JSONResponse({"error": str(exc.detail)}, exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        if apierrors.is_openai_path(request.url.path):
            return apierrors.validation_error(exc).response()
        problems = [
            {"loc": [str(part) for part in err.get("loc", ())], "msg": str(err.get("msg", ""))}
            for err in exc.errors()
        ]
        return JSONResponse({"error": "invalid request", "problems": problems}, 422)
