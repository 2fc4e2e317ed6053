"""The dashboard's routes and /metrics over real TLS on loopback: who may see them, the
Prometheus families read from the store, chat turns that become Jobs, the live stream."""

from __future__ import annotations

import json
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from manifests import Job
from reconciler.store import Store

RING = {"poolId": "p", "epoch": 7, "hash": "h", "converged": True, "shardColumns": 8192,
        "members": [{"nodeId": "node-a", "name": "a", "position": 0, "address": "127.0.0.1:1",
                     "shard": {"start": 0, "end": 4096}},
                    {"nodeId": "node-b", "name": "b", "position": 1, "address": "127.0.0.1:2",
                     "shard": {"start": 4096, "end": 8192}}]}  # fmt: skip
PEERS = [
    {"nodeId": "node-b", "name": "b", "address": "127.0.0.1:2", "status": "ONLINE", "route": "relay",
     "linkConnected": True, "bytesSent": 300, "bytesReceived": 200, "memoryBytes": 2**30},
    {"nodeId": "node-c", "name": "c", "address": "127.0.0.1:3", "status": "OFFLINE", "route": "direct",
     "linkConnected": False, "bytesSent": 5, "bytesReceived": 5},
]  # fmt: skip


def finished_job(name: str, tps: float, ttft_ms: float) -> Job:
    return Job.model_validate({
        "metadata": {"name": name},
        "spec": {"pool": "lab", "prompt": "Hi", "maxTokens": 4},
        "status": {"phase": "Succeeded", "output": "Hello there", "tokenIds": [1, 2, 3, 4],
                   "completionTokens": 4, "tokensPerSecond": tps, "timeToFirstTokenMs": ttft_ms,
                   "members": [{"nodeId": "node-a", "columns": [0, 4096], "computeMs": 40.0,
                                "commMs": 10.0},
                               {"nodeId": "node-b", "columns": [4096, 8192], "computeMs": 60.0,
                                "commMs": 20.0}]},
    })  # fmt: skip


def seed(kit: Any) -> None:
    with Store.open(kit.home.root) as store:
        store.put_observed("ring/lab", RING)
        store.put_observed("peers/lab", PEERS)
        store.put_observed(
            "beacons/lab", {"sent": 12, "received": 9, "drops": {"bad-signature": 2}}
        )
        store.put_observed("gossip/lab", {"rounds": 30, "messagesSent": 40, "messagesReceived": 38,
                                          "epoch": 7, "convergeSeconds": 0.25})  # fmt: skip
        for job in (finished_job("one", 8.0, 300.0), finished_job("two", 30.0, 1500.0)):
            store.apply(job)
            store.update_status(
                "Job", job.metadata.name, job.status.model_dump(mode="json", by_alias=True)
            )


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_anonymous_clients_get_the_page_but_no_data(kit: Any, plane: Any) -> None:
    with plane.client(None) as anon:
        page = anon.get("/dashboard")
        assert page.status_code == 200 and '<script src="/dashboard/app.js">' in page.text
        assert "EventSource" not in page.text and anon.get("/dashboard/app.js").status_code == 200
        assert anon.get("/dashboard/nothing.js").status_code == 404
        for path in ("/metrics", "/v1/dashboard/state", "/v1/dashboard/stream"):
            assert anon.get(path).status_code == 401, path
        assert anon.post("/v1/dashboard/chat", json={"messages": []}).status_code == 401


def test_metrics_are_read_from_the_store(kit: Any, plane: Any, member: httpx.Client) -> None:
    seed(kit)
    response = member.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    got = samples(response.text)
    pool = (("pool", "lab"),)
    assert got[("meshnet_peers", (("pool", "lab"), ("state", "ONLINE")))] == 1
    assert got[("meshnet_peers", (("pool", "lab"), ("state", "OFFLINE")))] == 1
    assert got[("meshnet_beacons_sent_total", pool)] == 12
    assert (
        got[("meshnet_beacons_dropped_total", (("pool", "lab"), ("reason", "bad-signature")))] == 2
    )
    assert got[("meshnet_gossip_rounds_total", pool)] == 30
    assert got[("meshnet_ring_epoch", pool)] == 7 and got[("meshnet_ring_members", pool)] == 2
    assert got[("meshnet_ring_converge_seconds", pool)] == 0.25
    assert got[("meshnet_relay_circuits", pool)] == 1
    assert got[("meshnet_relay_bytes_total", (("direction", "sent"), ("pool", "lab")))] == 300
    assert got[("meshnet_tokens_generated_total", pool)] == 8
    assert (
        got[("meshnet_member_compute_seconds_total", (("node_id", "node-b"), ("pool", "lab")))]
        == 0.12
    )
    assert (
        got[
            ("meshnet_member_communication_seconds_total", (("node_id", "node-a"), ("pool", "lab")))
        ]
        == 0.02
    )
    assert got[("meshnet_job_tokens_per_second_count", pool)] == 2
    assert got[("meshnet_job_tokens_per_second_bucket", (("le", "10.0"), ("pool", "lab")))] == 1
    assert (
        got[("meshnet_job_time_to_first_token_seconds_bucket", (("le", "0.5"), ("pool", "lab")))]
        == 1
    )


def test_state_lists_members_ring_and_jobs(kit: Any, plane: Any, member: httpx.Client) -> None:
    seed(kit)
    (pool,) = member.get("/v1/dashboard/state").json()["pools"]
    assert pool["name"] == "lab" and pool["ring"]["epoch"] == 7
    by_id = {m["nodeId"]: m for m in pool["members"]}
    assert by_id["node-a"]["self"] and by_id["node-a"]["shard"] == {"start": 0, "end": 4096}
    assert by_id["node-b"]["status"] == "ONLINE" and by_id["node-b"]["memoryBytes"] == 2**30
    assert by_id["node-b"]["computeMsPerToken"] == 15.0  # 60 ms over 4 tokens
    assert by_id["node-c"]["shard"] is None
    assert {j["name"] for j in pool["jobs"]} == {"one", "two"}


def test_a_chat_turn_becomes_a_job_and_streams(kit: Any, plane: Any, member: httpx.Client) -> None:
    turn = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
            "maxTokens": 5}  # fmt: skip
    created = member.post("/v1/dashboard/chat", json=turn)
    assert created.status_code == 201, created.text
    name = created.json()["job"]
    with Store.open(kit.home.root) as store:
        job = store.get("Job", name)
    assert isinstance(job, Job) and job.spec.pool == "lab" and job.spec.max_tokens == 5
    assert [m.role for m in job.spec.messages or []] == ["system", "user"]
    with member.stream("GET", "/v1/dashboard/stream") as stream:
        lines = stream.iter_lines()
        assert next(lines) == "event: snapshot"
        snapshot = json.loads(next(lines).removeprefix("data: "))
    assert [j["name"] for j in snapshot["pools"][0]["jobs"]] == [name]
    bad = member.post("/v1/dashboard/chat", json={"messages": [{"role": "robot", "content": "x"}]})
    assert bad.status_code == 422
    elsewhere = member.post("/v1/dashboard/chat", json={**turn, "pool": "other"})
    assert elsewhere.status_code == 403
