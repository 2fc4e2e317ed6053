"""The control plane over real TLS on loopback: auth, pool/peers/ring, jobs, SSE,
errors, port fallback."""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any

import httpx
import pytest

from reconciler.certs.files import load_certificate
from reconciler.certs.member import cert_fingerprint
from reconciler.certs.root import create_pool_root
from reconciler.controlplane.serve import read_port
from reconciler.store import Store
from reconciler.store_admin import record_revocation
from tests.agent_thread import idle_runner, local_api_thread

JOB: dict[str, Any] = {
    "apiVersion": "meshnet.dev/v1alpha1",
    "kind": "Job",
    "metadata": {"name": "hello"},
    "spec": {"pool": "lab", "prompt": "Hi", "maxTokens": 3},
}


def test_anonymous_clients_get_only_health_and_join(kit: Any, plane: Any) -> None:
    with plane.client(None) as anon:
        assert anon.get("/healthz").json() == {"status": "ok"}
        for path in (
            "/v1/pool",
            "/v1/peers",
            "/v1/ring",
            "/v1/jobs",
            "/v1/jobs/x",
            "/openapi.json",
        ):
            response = anon.get(path)
            assert response.status_code == 401, path
            assert "certificate" in response.json()["error"]
        assert anon.post("/v1/jobs", json=JOB).status_code == 401
        assert anon.post("/v1/join", json={}).status_code == 422  # reached, then refused


def test_a_member_of_another_pool_is_refused_at_the_handshake(kit: Any, plane: Any) -> None:
    other = create_pool_root(os.urandom(32), "other", time.time())
    files = kit.member_files("stranger", root=other)  # trusts our CA, certified by another
    with plane.client(files) as stranger, pytest.raises(httpx.TransportError):
        stranger.get("/v1/ring")


def test_a_revoked_member_is_refused(kit: Any, plane: Any) -> None:
    files = kit.member_files("gone")
    with plane.client(files) as client:
        assert client.get("/v1/ring").status_code == 200
        der = load_certificate(files.cert)
        with Store.open(kit.home.root) as store:
            record_revocation(store, kit.root, cert_fingerprint(der), time.time())
        response = client.get("/v1/ring")
    assert response.status_code == 403
    assert response.json() == {"error": "client certificate refused: revoked"}


def test_pool_peers_and_ring_come_from_the_store(kit: Any, member: httpx.Client) -> None:
    assert member.get("/v1/ring").json() == {"pool": "lab", "ring": None}
    peers = [{"nodeId": "node-1", "name": "a", "address": "10.0.0.1:7000", "status": "ONLINE",
              "lastSeen": "2026-01-01T00:00:00Z"}]  # fmt: skip
    with Store.open(kit.home.root) as store:
        store.put_observed("peers/lab", peers)
        store.put_observed("ring/lab", {"members": ["node-1"], "converged": True})
    assert member.get("/v1/peers").json() == {"pool": "lab", "items": peers}
    assert member.get("/v1/ring").json()["ring"]["converged"] is True
    pool = member.get("/v1/pool").json()
    assert pool["poolId"] == kit.root.pool_id and pool["object"]["metadata"]["name"] == "lab"
    assert member.get("/openapi.json").json()["info"]["title"] == "meshnet control plane"


def test_jobs_are_submitted_listed_and_fetched(kit: Any, member: httpx.Client) -> None:
    created = member.post("/v1/jobs", json=JOB)
    assert created.status_code == 201, created.text
    assert created.json()["metadata"]["generation"] == 1
    assert member.post("/v1/jobs", json=JOB).status_code == 409
    other_pool = {**JOB, "metadata": {"name": "x"}, "spec": {**JOB["spec"], "pool": "elsewhere"}}
    assert member.post("/v1/jobs", json=other_pool).status_code == 403
    [listed] = member.get("/v1/jobs").json()["items"]
    assert listed["spec"]["maxTokens"] == 3
    assert member.get("/v1/jobs/hello").json()["spec"]["prompt"] == "Hi"
    missing = member.get("/v1/jobs/nope")
    assert missing.status_code == 404 and "nope" in missing.json()["error"]


def test_bad_requests_get_4xx_json_naming_the_problem(member: httpx.Client) -> None:
    bad = {**JOB, "spec": {"pool": "lab", "prompt": "x", "maxTokens": 0, "bogus": 1}}
    response = member.post("/v1/jobs", json=bad)
    assert response.status_code == 422
    fields = {tuple(p["loc"][-1:]) for p in response.json()["problems"]}
    assert ("maxTokens",) in fields and ("bogus",) in fields
    garbage = member.post(
        "/v1/jobs", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert garbage.status_code == 422 and garbage.json()["error"] == "invalid request"
    assert member.get("/v1/jobs/UPPER").status_code == 422
    assert member.delete("/v1/jobs").status_code == 405


def test_job_events_stream_status_and_tokens(kit: Any, member: httpx.Client) -> None:
    """Each change the agent writes arrives as its own event, in order: the test writes
    the next change only after the stream has delivered the previous one."""
    assert member.post("/v1/jobs", json=JOB).status_code == 201
    changes: list[dict[str, Any]] = [
        {"phase": "Running"},
        {"tokenIds": [5], "output": "a"},
        {"tokenIds": [5, 6], "output": "ab"},
        {"phase": "Succeeded", "tokenIds": [5, 6, 7], "output": "abc"},
    ]
    events: list[tuple[str, dict[str, Any]]] = []
    with (
        local_api_thread(kit.home, idle_runner(), watch_store=True),  # the agent pushes
        Store.open(kit.home.root) as store,
        member.stream("GET", "/v1/jobs/hello/events", timeout=10) as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        kind = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
                continue
            if not line.startswith("data: "):
                continue
            events.append((kind, json.loads(line[6:])))
            if changes and kind in ("status", "token"):
                store.patch_status("Job", "hello", changes.pop(0))
    assert [k for k, _ in events] == [
        "status",
        "status",
        "token",
        "token",
        "status",
        "token",
        "end",
    ]
    assert events[0][1]["phase"] in (None, "Pending")
    assert events[1][1]["phase"] == "Running"
    assert [d["id"] for k, d in events if k == "token"] == [5, 6, 7]
    assert [d["output"] for k, d in events if k == "token"] == ["a", "ab", "abc"]
    assert events[4][1]["phase"] == "Succeeded"
    assert events[-1][1] == {"phase": "Succeeded", "output": "abc"}


def test_port_fallback_when_the_first_port_is_taken(
    kit: Any, base_port: int, plane_at: Any
) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", base_port))
    taken.listen()
    try:
        running = plane_at(base_port, base_port + 5)
        assert running.plane.port == base_port + 1
        assert read_port(kit.home) == base_port + 1
        with running.client(None) as anon:
            assert anon.get("/healthz").status_code == 200
        second = plane_at(base_port, base_port + 5)
        assert second.plane.port == base_port + 2
    finally:
        taken.close()


def test_no_free_port_is_an_error(kit: Any, base_port: int, plane_at: Any) -> None:
    from reconciler.controlplane.serve import NoFreePort, bind_first_free

    taken = socket.socket()
    taken.bind(("127.0.0.1", base_port))
    try:
        try:
            bind_first_free("127.0.0.1", base_port, base_port)
        except NoFreePort as err:
            assert str(base_port) in str(err)
        else:
            raise AssertionError("bound a taken port")
    finally:
        taken.close()


def test_job_events_end_after_the_wait(member: httpx.Client) -> None:
    assert member.post("/v1/jobs", json=JOB).status_code == 201
    response = member.get("/v1/jobs/hello/events", params={"wait": 0.2})
    assert "event: status" in response.text and "event: timeout" in response.text
    assert member.get("/v1/jobs/hello/events", params={"wait": -1}).status_code == 422
