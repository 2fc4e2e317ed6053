"""meshctl dashboard's proxy: a browser on this machine reaches the control plane as
this device (mutual TLS with its member certificate); other Host names are refused."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from reconciler.controlplane.dashproxy import ProxyError, Upstream, create_proxy, upstream_for
from reconciler.home import Home


def call(upstream: Upstream, path: str, host: str = "127.0.0.1:8090") -> httpx.Response:
    async def go() -> httpx.Response:
        app = create_proxy(upstream)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{host}") as client:
            return await client.get(path)

    return asyncio.run(go())


def test_the_proxy_forwards_as_this_device(kit: Any, plane: Any) -> None:
    upstream = Upstream(plane.url, kit.root.anchor.pool_id, kit.member_files("laptop"))
    state = call(upstream, "/v1/dashboard/state")
    assert state.status_code == 200 and state.json()["pools"][0]["name"] == "lab"
    assert call(upstream, "/metrics").text.startswith("# HELP")
    page = call(upstream, "/")
    assert page.status_code == 307 and page.headers["location"] == "/dashboard"


def test_other_host_names_are_refused(kit: Any, plane: Any) -> None:
    upstream = Upstream(plane.url, kit.root.anchor.pool_id, kit.member_files("laptop"))
    assert call(upstream, "/v1/dashboard/state", host="evil.example:8090").status_code == 403
    assert call(upstream, "/v1/dashboard/state", host="localhost:8090").status_code == 200


def test_an_unreachable_control_plane_is_a_502(kit: Any) -> None:
    upstream = Upstream("https://127.0.0.1:1", kit.root.anchor.pool_id, kit.member_files("laptop"))
    reply = call(upstream, "/v1/dashboard/state")
    assert reply.status_code == 502 and "unreachable" in reply.text


def test_a_device_without_a_pool_gets_a_clear_error(tmp_path: Any) -> None:
    with pytest.raises(ProxyError, match="not a member of a pool"):
        upstream_for(Home(tmp_path), None, None)
