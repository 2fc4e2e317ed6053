"""Tokens, approvals and observed state through the CLI (no agent needed)."""

from __future__ import annotations

import json
import re

from typer.testing import CliRunner

from reconciler.entry import mesh_app
from reconciler.entry import meshctl_app as app
from reconciler.home import Home
from reconciler.store import Store
from reconciler.store_admin import approvals, tokens

runner = CliRunner()
RING = {
    "poolId": "pool-1", "epoch": 3, "hash": "ab" * 32, "converged": True, "shardColumns": 8192,
    "members": [
        {"nodeId": "node-a", "name": "a", "position": 0, "address": "10.0.0.1:1", "shard": {"start": 0, "end": 4096}},
        {"nodeId": "node-b", "name": "b", "position": 1, "address": "10.0.0.2:1", "shard": {"start": 4096, "end": 8192}},
    ],
}  # fmt: skip


def _admin(home: Home) -> None:
    assert runner.invoke(mesh_app, ["init", "--name", "admin"]).exit_code == 0
    assert runner.invoke(mesh_app, ["pool-create", "--name", "test-pool"]).exit_code == 0


def test_token_create_list_delete(home: Home) -> None:
    result = runner.invoke(app, ["token", "create"])
    assert result.exit_code == 1 and "administers no" in result.stderr
    _admin(home)
    result = runner.invoke(app, ["token", "create", "--ttl", "2h", "--usages", "2"])
    token = result.stdout.strip()
    assert re.fullmatch(r"[a-z0-9]{6}\.[a-z0-9]{16}", token)
    with Store.open(home.root) as store:
        (stored,) = tokens(store)
    assert stored.record.token_id == token[:6] and stored.record.usages_left == 2
    assert token[7:] not in (home.root / "state.db").read_bytes().decode(errors="replace")
    listing = json.loads(runner.invoke(app, ["token", "list", "-o", "json"]).stdout)
    assert listing["items"][0]["tokenId"] == token[:6] and listing["items"][0]["usable"]
    assert runner.invoke(app, ["token", "create", "--ttl", "soon"]).exit_code == 1
    assert runner.invoke(app, ["token", "delete", token]).exit_code == 0
    assert runner.invoke(app, ["token", "delete", token]).exit_code == 1


def test_approve_needs_a_pending_request(home: Home) -> None:
    _admin(home)
    result = runner.invoke(app, ["certificate", "approve", "laptop"])
    assert result.exit_code == 1 and "no Member named 'laptop'" in result.stderr
    with Store.open(home.root) as store:
        from manifests import Member

        member = Member.model_validate({
            "metadata": {"name": "laptop"},
            "spec": {"pool": {"name": "test-pool", "id": "pool-1", "rootFingerprint": "sha256:" + "a" * 64}},
        })  # fmt: skip
        store.apply(member)
        key = "sha256:" + "b" * 64
        store.update_status(
            "Member", "laptop", {"phase": "Pending", "nodeId": "node-x", "keyFingerprint": key}
        )
    approve = ["certificate", "approve", "laptop", "--fingerprint", key]
    assert runner.invoke(app, approve).exit_code == 0
    with Store.open(home.root) as store:
        assert approvals(store, "test-pool") == {"node-x": "approved"}


def test_get_peers_and_ring_read_observed_state(home: Home) -> None:
    _admin(home)
    with Store.open(home.root) as store:
        store.put_observed("ring/test-pool", RING)
        peer = {"nodeId": "node-b", "name": "b", "address": "10.0.0.2:1", "status": "ONLINE",
                "lastSeen": "2026-01-01T00:00:00Z"}  # fmt: skip
        store.put_observed("peers/test-pool", [peer])
    items = json.loads(runner.invoke(app, ["get", "peers", "-o", "json"]).stdout)["items"]
    assert items == [{"pool": "test-pool", **peer}]
    out = runner.invoke(app, ["get", "ring"]).stdout
    assert "4096-8192" in out and "converged" in out
    ring = json.loads(runner.invoke(mesh_app, ["ring-status", "-o", "json"]).stdout)
    assert ring["members"][1]["shard"] == {"start": 4096, "end": 8192}
    refused = runner.invoke(mesh_app, ["pool-peers", "--pool-id", "nope"])
    assert refused.exit_code == 1 and "no pool with ID nope" in refused.stderr
    described = runner.invoke(app, ["describe", "pool", "test-pool"]).stdout
    assert "Peers:" in described and "node-b" in described and "Ring:" in described


def test_inference_job_documents() -> None:
    from meshctl.inference_cmd import job_document, result_document

    args = {
        "prompt": "Hi",
        "max_tokens": 4,
        "model": "demo",
        "temperature": 0.0,
        "seed": 3,
        "chat": True,
    }
    job = job_document("j", "p", args)
    assert job.spec.prompt is None and job.spec.messages is not None
    assert job.spec.messages[0].content == "Hi" and job.spec.seed == 3
    plain = job_document("j", "p", {**args, "chat": False})
    assert plain.spec.prompt == "Hi" and plain.spec.messages is None
    doc = result_document(
        {"output": "x", "tokenIds": [1], "promptTokenIds": [5, 6], "completionTokens": 1}
    )
    assert set(doc) == {"text", "tokenIds", "promptTokenIds", "promptTokens", "completionTokens",
                        "tokensPerSecond", "timeToFirstTokenMs", "members"}  # fmt: skip
    assert doc["text"] == "x" and doc["promptTokenIds"] == [5, 6]
