"""The control plane's resource limits on loopback: bounded request bodies, capped
event streams, a deadline on the TLS handshake, bounded concurrency."""

from __future__ import annotations

import contextlib
import socket
import ssl
from typing import Any

import httpx
import pytest

from reconciler.controlplane import limits
from reconciler.controlplane.limits import StreamSlots

JOB = {
    "apiVersion": "meshnet.dev/v1alpha1",
    "kind": "Job",
    "metadata": {"name": "hello"},
    "spec": {"pool": "lab", "prompt": "Hi", "maxTokens": 3},
}


def test_a_join_body_over_its_limit_gets_413(plane: Any) -> None:
    with plane.client(None) as anonymous:
        big = b'{"poolId": "' + b"x" * limits.BODY_LIMITS["/v1/join"] + b'"}'
        response = anonymous.post(
            "/v1/join", content=big, headers={"content-type": "application/json"}
        )
        assert response.status_code == 413
        assert "over" in response.json()["error"]

        def chunks() -> Any:  # no Content-Length: counted as it streams in
            for _ in range(40):
                yield b"y" * 1024

        streamed = anonymous.post("/v1/join", content=chunks())
        assert streamed.status_code == 413


def test_event_streams_are_capped_per_caller(member: httpx.Client) -> None:
    assert member.post("/v1/jobs", json=JOB).status_code == 201
    with contextlib.ExitStack() as open_streams:
        for _ in range(limits.STREAMS_PER_CALLER):
            response = open_streams.enter_context(
                member.stream("GET", "/v1/jobs/hello/events", params={"wait": 60})
            )
            assert response.status_code == 200
        refused = member.get("/v1/jobs/hello/events", params={"wait": 1})
        assert refused.status_code == 429
    assert member.get("/v1/jobs/hello/events", params={"wait": 0.1}).status_code == 200
    assert member.get("/v1/jobs/hello/events", params={"wait": 3600}).status_code == 422


def test_stream_slots_cap_in_total_and_expire() -> None:
    now = [0.0]
    slots = StreamSlots(per_caller=2, total=3, lifetime=10.0, clock=lambda: now[0])
    taken = [slots.acquire("a"), slots.acquire("a"), slots.acquire("b")]
    assert None not in taken
    assert slots.acquire("a") is None and slots.acquire("c") is None
    slots.release(taken[0])  # type: ignore[arg-type]
    assert slots.acquire("c") is not None
    now[0] = 11.0  # a stream whose end was never seen frees its slot
    assert slots.count() == 3 and slots.acquire("c") is not None


def test_a_silent_connection_is_closed_at_the_handshake_deadline(plane: Any) -> None:
    with socket.create_connection(("127.0.0.1", plane.plane.port), timeout=30) as raw:
        assert raw.recv(1) == b""  # closed by the server, not our 30 s timeout


def test_uvicorn_runs_with_bounded_concurrency(plane: Any) -> None:
    config = plane.plane._server.config
    assert config.limit_concurrency == limits.LIMIT_CONCURRENCY
    assert config.timeout_keep_alive == limits.KEEP_ALIVE_SECONDS


def test_connections_over_the_per_address_cap_are_closed(
    plane: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "CONNECTIONS_PER_ADDRESS", 2)
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    opened = []
    try:
        for _ in range(3):
            raw = socket.create_connection(("127.0.0.1", plane.plane.port), timeout=30)
            opened.append(ctx.wrap_socket(raw))
        opened[2].sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        assert opened[2].recv(100) == b""  # closed at once, not answered
        opened[0].sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        assert opened[0].recv(100).startswith(b"HTTP/1.1 200")
    finally:
        for sock in opened:
            sock.close()
