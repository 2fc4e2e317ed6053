"""POST /v1/jobs refuses a prompt beyond the model's context, naming the limits, and
stores nothing; a check that takes too long leaves the refusal to the agent."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.controlplane import jobs

MODEL = Path(__file__).resolve().parents[2] / "fixtures" / "models" / "tiny-llama.gguf"


@pytest.fixture(autouse=True)
def model_in_the_admins_folder(kit: Any) -> None:
    """Members name models; the admin keeps them in MESHNET_HOME/models."""
    folder = kit.home.root / "models"
    folder.mkdir(exist_ok=True)
    (folder / MODEL.name).symlink_to(MODEL)


def _job(name: str, prompt: str, max_tokens: int) -> dict[str, object]:
    spec = {"pool": "lab", "model": MODEL.name, "prompt": prompt, "maxTokens": max_tokens}
    return {"apiVersion": "meshnet.dev/v1alpha1", "kind": "Job",
            "metadata": {"name": name}, "spec": spec}  # fmt: skip


def test_a_too_long_prompt_is_refused_at_submission(member: httpx.Client) -> None:
    refused = member.post("/v1/jobs", json=_job("long", "hello world " * 30, 200))
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert "PromptTooLong" in error and "context of 256" in error and "maxTokens 200" in error
    assert member.get("/v1/jobs/long").status_code == 404
    assert member.post("/v1/jobs", json=_job("short", "hello", 8)).status_code == 201


def test_a_slow_prompt_check_accepts_the_job_for_the_agent_to_check(
    member: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()

    def slow_check(job: object, world_size: int, home: object) -> str:
        release.wait(30)  # a GGUF whose metadata takes long to read
        return "too long"

    monkeypatch.setattr(jobs, "job_prompt_problem", slow_check)
    monkeypatch.setattr(jobs, "CHECK_SECONDS", 0.01)
    try:
        accepted = member.post("/v1/jobs", json=_job("slow", "hello world " * 30, 200))
    finally:
        release.set()
    assert accepted.status_code == 201  # the agent refuses it before any member loads
