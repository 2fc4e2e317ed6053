"""The OpenAI-compatible API of a real agent (`meshctl agent --api-port 0`) in a pool of
two devices on loopback, driven by the official `openai` package and by curl; a client
that disconnects cancels its Job; `mesh chat` in a pseudo-terminal (tmux)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import httpx
import openai
import pytest
from agents import wait_for, watching
from lan import Device, Lan
from openai.types.chat import ChatCompletionMessageParam
from pool_steps import get, make_token, request_join, ring_of, start_admin, wait_joined

from manifests import Job
from reconciler.store import Store

PROMPT = "What is the capital of France?"
CHAT: list[ChatCompletionMessageParam] = [{"role": "user", "content": PROMPT}]


class Pool:
    """Two devices; the member serves the API and coordinates its jobs."""

    def __init__(self, lan: Lan) -> None:
        self.admin, self.member = lan.add("device1"), lan.add("device2")
        for device in (self.admin, self.member):
            device.extra_env = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
        pool = start_admin(self.admin)
        request_join(self.member, pool, make_token(self.admin))
        wait_joined(self.member)
        for device in (self.admin, self.member):
            wait_for(partial(ring_of, device, 2), 30, "ring of 2")
        self.member.processes[-1].stop()
        self.member.start_agent("--api-port", "0")
        port_file = self.member.home.root / "api.port"
        self.port = int(wait_for(lambda: port_file.read_text().strip() if port_file.exists() else None,
                                 30, "api.port"))  # fmt: skip
        wait_for(partial(ring_of, self.member, 2), 30, "ring of 2 again")
        made = self.member.cli("apikey", "create", "tests", "-o", "json")
        self.key = json.loads(made.stdout)["key"]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url, api_key=self.key, timeout=240)

    def jobs(self) -> list[Job]:
        with Store.open(self.member.home.root) as store:
            return [j for j in store.list("Job") if isinstance(j, Job)]


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    root = tmp_path_factory.mktemp("openai")
    lan = Lan(root, use_netns=False)
    try:
        with watching(root):
            yield Pool(lan)
    finally:
        lan.close()


def _inference(device: Device, *args: str) -> dict[str, Any]:
    result = device.cli("inference", "-o", "json", *args, tool="mesh", timeout=240)
    return dict(json.loads(result.stdout))


@pytest.mark.slow
def test_openai_client_chat_matches_mesh_inference(pool: Pool) -> None:
    client = pool.client()
    assert [m.id for m in client.models.list()] == ["demo"]
    answer = client.chat.completions.create(model="demo", messages=CHAT, max_tokens=8,
                                            temperature=0)  # fmt: skip
    reference = _inference(pool.member, "--prompt", PROMPT, "--chat",
                           "--max-tokens", "8")  # fmt: skip
    assert answer.choices[0].message.content == reference["text"]
    assert answer.usage is not None
    assert answer.usage.prompt_tokens == reference["promptTokens"]
    assert answer.usage.completion_tokens == len(reference["tokenIds"])
    assert answer.choices[0].finish_reason in ("stop", "length")
    job_name = answer.id.removeprefix("chatcmpl-")
    listed = json.loads(pool.member.cli("get", "jobs", "-o", "json").stdout)["items"]
    job = next(j for j in listed if j["metadata"]["name"] == job_name)
    assert job["status"]["phase"] == "Succeeded"
    plan = job["status"]["plan"]  # auto: whatever the measurements made of two devices
    assert len(job["status"]["members"]) == (1 if plan["kind"] == "single" else 2)

    stream = client.chat.completions.create(model="demo", messages=CHAT, max_tokens=8,
                                            temperature=0, stream=True)  # fmt: skip
    pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
    assert "".join(pieces) == reference["text"] and len([p for p in pieces if p]) >= 2


@pytest.mark.slow
def test_openai_client_text_completion_with_stop(pool: Pool) -> None:
    client = pool.client()
    free = client.completions.create(
        model="demo", prompt="1, 2, 3, 4,", max_tokens=8, temperature=0
    )
    text = free.choices[0].text
    assert text.startswith(" 5, 6"), text
    stopped = client.completions.create(model="demo", prompt="1, 2, 3, 4,", max_tokens=8,
                                        temperature=0, stop=[" 6"])  # fmt: skip
    assert stopped.choices[0].text == text[: text.index(" 6")]
    assert stopped.choices[0].finish_reason == "stop"
    chunks = client.completions.create(model="demo", prompt="1, 2, 3, 4,", max_tokens=8,
                                       temperature=0, stop=" 6", stream=True)  # fmt: skip
    assert "".join(c.choices[0].text for c in chunks if c.choices) == stopped.choices[0].text
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model="demo", prompt="x", n=2)
    assert isinstance(err.value.body, dict) and err.value.body["param"] == "n"


@pytest.mark.slow
def test_curl_streams_chat_and_gets_error_bodies(pool: Pool) -> None:
    body = json.dumps({"model": "demo", "messages": CHAT, "max_tokens": 4, "temperature": 0,
                       "stream": True})  # fmt: skip
    result = subprocess.run(
        ["curl", "-sS", "-N", f"{pool.url}/chat/completions", "-H", f"Authorization: Bearer {pool.key}",
         "-H", "Content-Type: application/json", "-d", body],
        capture_output=True, text=True, timeout=240, check=True,
    )  # fmt: skip
    events = [e.removeprefix("data: ") for e in result.stdout.strip().split("\n\n")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    refused = subprocess.run(["curl", "-sS", "-w", "\n%{http_code}", f"{pool.url}/models"],
                             capture_output=True, text=True, timeout=30, check=True)  # fmt: skip
    payload, status = refused.stdout.rsplit("\n", 1)
    assert status == "401" and json.loads(payload)["error"]["code"] == "invalid_api_key"


@pytest.mark.slow
def test_client_disconnect_cancels_the_running_job(pool: Pool) -> None:
    body = {"model": "demo", "prompt": "Once upon a time", "max_tokens": 400, "stream": True}
    headers = {"Authorization": f"Bearer {pool.key}"}
    with httpx.stream("POST", f"{pool.url}/completions", json=body, headers=headers,
                      timeout=240) as response:  # fmt: skip
        lines = (line for line in response.iter_lines() if line.startswith("data: "))
        first = json.loads(next(lines).removeprefix("data: "))
    name = first["id"].removeprefix("cmpl-")

    def failure() -> str | None:
        job = get(pool.member, "Job", name)
        return job.status.failure_reason if job.status.phase == "Failed" else None

    assert wait_for(failure, 60, "the job to be cancelled") == "Cancelled"
    job = get(pool.member, "Job", name)
    assert len(job.status.token_ids) < 400


def _pane(session: str) -> str:
    out = subprocess.run(["tmux", "capture-pane", "-p", "-J", "-t", session], capture_output=True,
                         text=True, check=True)  # fmt: skip
    return out.stdout


def _shown(text: str, session: str) -> bool:
    """Whether the pane shows ``text`` (whitespace aside: the terminal wraps lines)."""
    return "".join(text.split()) in "".join(_pane(session).split())


def _keys(session: str, *keys: str) -> None:
    subprocess.run(["tmux", "send-keys", "-t", session, *keys], check=True)


@pytest.mark.slow
def test_mesh_chat_in_a_terminal(pool: Pool) -> None:
    device, session = pool.member, f"meshchat{pool.port}"
    env = [
        f"{k}={v}"
        for k, v in device.env().items()
        if k.startswith(("MESHNET_", "PYTHON", "OPEN", "OMP"))
    ]
    python = sys.executable
    command = ["env", *env, python, "-m", "reconciler.entry.mesh", "chat", "--temperature", "0",
               "--max-tokens", "120"]  # fmt: skip
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "200", "-y", "50",
                    subprocess.list2cmdline(command)], check=True)  # fmt: skip
    try:
        wait_for(lambda: "> " in _pane(session), 60, "the chat prompt")
        before = {j.metadata.name for j in pool.jobs()}
        _keys(session, "Tell me a long story about a dragon", "Enter")

        def story() -> Job | None:
            new = [j for j in pool.jobs() if j.metadata.name not in before]
            return new[0] if new and len(new[0].status.output or "") > 20 else None

        first = wait_for(story, 120, "the story to stream")
        wait_for(lambda: _shown((first.status.output or "")[:20], session), 30, "the story shown")
        _keys(session, "C-c")
        wait_for(lambda: "[stopped]" in _pane(session), 30, "the answer to stop")
        cancelled = wait_for(
            lambda: (j := get(device, "Job", first.metadata.name)).status.phase == "Failed" and j,
            60,
        )
        assert cancelled.status.failure_reason == "Cancelled"

        _keys(session, "/system You answer briefly.", "Enter")
        wait_for(lambda: "system prompt set" in _pane(session), 30, "/system")
        _keys(session, "What is the capital of France?", "Enter")
        seen = before | {first.metadata.name}
        second = wait_for(lambda: next((j for j in pool.jobs() if j.metadata.name not in seen
                                        and j.status.phase == "Succeeded"), None), 300, "answer")  # fmt: skip
        assert [m.model_dump() for m in second.spec.messages or []] == [
            {"role": "system", "content": "You answer briefly."},
            {"role": "user", "content": "What is the capital of France?"},
        ]
        wait_for(lambda: _shown(second.status.output or "", session), 30, "the answer shown")
        _keys(session, "C-d")
        wait_for(lambda: subprocess.run(["tmux", "has-session", "-t", session],
                                        capture_output=True).returncode != 0, 30, "mesh chat to exit")  # fmt: skip
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


@pytest.mark.slow
def test_a_busy_client_does_not_starve_another(pool: Pool) -> None:
    """Key "busy" sends three requests at once, then key "other" one: the pool runs one
    job at a time, and the other client's job starts before the busy client's last."""
    other = json.loads(pool.member.cli("apikey", "create", "other", "-o", "json").stdout)["key"]
    body = {"model": "demo", "prompt": "Count: 1, 2, 3,", "max_tokens": 16, "temperature": 0}
    before = {j.metadata.name for j in pool.jobs()}

    def send(key: str) -> str:
        response = httpx.post(f"{pool.url}/completions", json=body, timeout=300,
                              headers={"Authorization": f"Bearer {key}"})  # fmt: skip
        response.raise_for_status()
        return str(response.json()["id"]).removeprefix("cmpl-")

    with ThreadPoolExecutor(4) as workers:
        busy = [workers.submit(send, pool.key) for _ in range(3)]
        wait_for(lambda: len([j for j in pool.jobs() if j.metadata.name not in before]) == 3, 60)
        late = workers.submit(send, other)
        busy_names, other_name = [f.result() for f in busy], late.result()
    with Store.open(pool.member.home.root) as store:
        started = [
            e.name for e in store.events(limit=1000) if e.kind == "Job" and e.reason == "Started"
        ]
    order = [name for name in started if name in {*busy_names, other_name}]
    assert len(order) == 4 and order.index(other_name) < 3, order
    clients = {
        j.metadata.name: j.metadata.annotations.get("meshnet.dev/client") for j in pool.jobs()
    }
    assert clients[other_name] == "apikey:other" and clients[busy_names[0]] == "apikey:tests"
