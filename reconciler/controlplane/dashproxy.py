"""``meshctl dashboard``: the dashboard in any browser, as ``kubectl proxy`` does it.

Browsers do not accept the pool's Ed25519 TLS certificates, so the control plane cannot
be opened in one directly. This proxy listens on plain HTTP on ``127.0.0.1`` only and
forwards each request to the control plane over mutual TLS, authenticated with this
device's member certificate of the pool (the server is verified against the pool
root, named by SNI). Anyone who can reach the proxy acts as this device: it listens on
loopback, and refuses requests whose ``Host`` is not a loopback name (a web page cannot
use it through DNS rebinding). Responses stream, so the dashboard's live updates pass.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

import httpx
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from reconciler.controlplane.serve import read_port
from reconciler.drivers.tls import TlsFiles, client_context
from reconciler.home import Home
from reconciler.material import tls_files
from reconciler.pools import read_pool_info

LOCAL_HOSTS = re.compile(r"^(localhost|127\.0\.0\.1|\[::1\])(:\d+)?$")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "host",
              "content-length", "proxy-authorization", "proxy-connection", "trailer"}  # fmt: skip


@dataclass(frozen=True)
class Upstream:
    """The control plane to forward to, and who we are to it."""

    url: str  # https://host:port
    pool_id: str  # the SNI that selects the pool's certificate
    files: TlsFiles  # this device's member certificate, key and the pool root


def create_proxy(upstream: Upstream, transport: httpx.AsyncBaseTransport | None = None) -> Starlette:
    """The proxy app (`transport` lets tests swap the network)."""
    client = httpx.AsyncClient(
        base_url=upstream.url, verify=client_context(upstream.files), timeout=None,
        transport=transport,
    )  # fmt: skip

    async def forward(request: Request) -> Response:
        if not LOCAL_HOSTS.match(request.headers.get("host", "")):
            return PlainTextResponse("meshctl dashboard answers only to localhost", 403)
        if request.url.path == "/":
            return RedirectResponse("/dashboard")
        outgoing = client.build_request(
            request.method, request.url.path, params=request.query_params,
            headers=_headers(request.headers.items()), content=await request.body(),
            extensions={"sni_hostname": upstream.pool_id},
        )  # fmt: skip
        try:
            reply = await client.send(outgoing, stream=True)
        except httpx.HTTPError as err:
            return PlainTextResponse(f"control plane {upstream.url} unreachable: {err}", 502)
        return StreamingResponse(_body(reply), reply.status_code,
                                 headers=_headers(reply.headers.items()),
                                 background=BackgroundTask(reply.aclose))  # fmt: skip

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        await client.aclose()

    methods = ["GET", "POST", "PUT", "DELETE", "PATCH"]
    routes = [Route("/{path:path}", forward, methods=methods)]
    return Starlette(routes=routes, lifespan=lifespan)


def upstream_for(home: Home, pool: str | None, address: str | None) -> Upstream:
    """This device's control plane (or `address`), for its only pool (or `pool`)."""
    names = sorted(p.parent.name for p in home.root.glob("pools/*/member.crt"))
    if not names:
        raise ProxyError("this device is not a member of a pool yet (see mesh pool-create)")
    if pool is None and len(names) > 1:
        raise ProxyError(f"name the pool with --pool (this device is in {', '.join(names)})")
    name = pool or names[0]
    info = read_pool_info(home, name)
    if info is None or name not in names:
        raise ProxyError(f"this device holds no member certificate of pool {name!r}")
    if address is None:
        port = read_port(home)
        if port is None:
            raise ProxyError("no control plane on this device (start mesh-control-plane, "
                             "or give --control-plane HOST:PORT)")  # fmt: skip
        address = f"127.0.0.1:{port}"
    url = address if address.startswith("https://") else f"https://{address}"
    return Upstream(url, info.pool_id, tls_files(home, name))


class ProxyError(Exception):
    """The proxy cannot start; the message says what to do."""


def _headers(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {k: v for k, v in items if k.lower() not in HOP_BY_HOP}


async def _body(reply: httpx.Response) -> AsyncIterator[bytes]:
    async for chunk in reply.aiter_raw():
        yield chunk
