"""Finding 4 over HTTP: a member's POST /v1/jobs names a model, never a path, and the
Job it creates is marked so the admin's agent resolves it by name only."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from manifests import Job
from reconciler.models import SUBMITTED_BY
from reconciler.store import Store


def job(name: str, model: str) -> dict[str, Any]:
    return {"apiVersion": "meshnet.dev/v1alpha1", "kind": "Job", "metadata": {"name": name},
            "spec": {"pool": "lab", "model": model, "prompt": "Hi", "maxTokens": 3}}  # fmt: skip


@pytest.mark.parametrize("model", ["/etc/passwd", "../../state.db", "models/x.gguf", "~/x"])
def test_a_path_is_refused(member: httpx.Client, model: str) -> None:
    response = member.post("/v1/jobs", json=job("bad", model))
    assert response.status_code == 422 and "not a path" in response.json()["error"]


def test_a_named_model_is_accepted_and_marked(kit: Any, member: httpx.Client) -> None:
    for name, model in (("one", "demo"), ("two", "tiny-llama.gguf")):
        assert member.post("/v1/jobs", json=job(name, model)).status_code == 201
    with Store.open(kit.home.root) as store:
        stored = store.get("Job", "two")
    assert isinstance(stored, Job)
    assert stored.metadata.annotations[SUBMITTED_BY].startswith("node-")
