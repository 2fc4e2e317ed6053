"""The OpenAI-compatible routes of the control plane over real TLS on loopback: API keys
and member certificates, OpenAI's error bodies, response and chunk shapes, and a client
that goes away cancelling its Job. The agent is a stand-in that writes Job status as the
real runner does (the real agent is driven in tests/e2e/test_openai_api.py)."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from manifests import Job
from meshctl.agentclient import AgentClient
from reconciler.apikeys import create_key, delete_key
from reconciler.controllers.jobqueue import CANCEL_ANNOTATION, CLIENT_ANNOTATION
from reconciler.singleton import PidLock
from reconciler.store import Store
from tests.agent_thread import idle_runner, local_api_thread

CHAT = {"model": "demo", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}


class StandInAgent:
    """Holds the agent lock and serves the agent's socket (the control plane follows
    jobs through it); answers every new Job with ``pieces`` then Succeeded, or
    (``hold``) leaves it Running until it is cancelled."""

    def __init__(self, kit: Any, pieces: list[str], hold: bool = False) -> None:
        self.kit, self.pieces, self.hold = kit, pieces, hold
        self.lock = PidLock(kit.home.agent_lock)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.api = local_api_thread(kit.home, idle_runner(), watch_store=True)  # pushes

    def __enter__(self) -> StandInAgent:
        self.lock.acquire()
        self.api.__enter__()
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)
        self.api.__exit__(None, None, None)
        self.lock.release()

    def _run(self) -> None:
        """Steps the jobs at every store change the served API pushes (``watch``); the
        0.1 s idle wake-up only notices ``stop`` (at the end of a test)."""
        with Store.open(self.kit.home.root) as store:
            for _change in AgentClient(self.kit.home.agent_socket).watch(idle=0.1):
                if self.stop.is_set():
                    return
                for job in store.list("Job"):
                    assert isinstance(job, Job)
                    self._step(store, job)

    def _step(self, store: Store, job: Job) -> None:
        name = job.metadata.name
        if job.status.phase in ("Succeeded", "Failed"):
            return
        if CANCEL_ANNOTATION in job.metadata.annotations:
            store.patch_status("Job", name, {"phase": "Failed", "failureReason": "Cancelled",
                                             "failureMessage": "cancelled"})  # fmt: skip
            return
        if job.status.phase is None:
            store.patch_status("Job", name, {"phase": "Running", "promptTokens": 5})
            if self.hold:
                return
            text = ""
            for index, piece in enumerate(self.pieces):
                text += piece
                ids = list(range(index + 1))
                store.patch_status("Job", name, {"output": text, "tokenIds": ids})
            store.patch_status("Job", name, {"phase": "Succeeded", "finishReason": "length",
                                             "completionTokens": len(self.pieces)})  # fmt: skip


@pytest.fixture
def key(kit: Any) -> str:
    with Store.open(kit.home.root) as store:
        secret, _ = create_key(store, "tester")
    return secret


@pytest.fixture
def api(plane: Any, key: str) -> Iterator[httpx.Client]:
    with plane.client(None) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        yield client


def sse_events(text: str) -> list[Any]:
    lines = [line[len("data: ") :] for line in text.split("\n\n") if line.startswith("data: ")]
    return [line if line == "[DONE]" else json.loads(line) for line in lines]


def assert_openai_error(response: httpx.Response, status: int, param: str | None = None) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"] and error["type"]
    if param is not None:
        assert error["param"] == param


def test_keys_are_required_and_revocation_takes_effect(
    kit: Any, plane: Any, api: httpx.Client
) -> None:
    with plane.client(None) as anonymous:
        assert_openai_error(anonymous.get("/v1/models"), 401)
        wrong = {"Authorization": "Bearer mesh_00000000_" + "A" * 43}
        assert_openai_error(anonymous.get("/v1/models", headers=wrong), 401)
    assert api.get("/v1/models").json()["data"][0]["id"] == "demo"
    with Store.open(kit.home.root) as store:
        assert delete_key(store, "tester")
    response = api.get("/v1/models")
    assert_openai_error(response, 401)
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_member_certificates_are_accepted(kit: Any, plane: Any) -> None:
    with plane.client(kit.member_files("m1")) as member:
        assert member.get("/v1/models").json()["data"][0]["id"] == "demo"


def test_model_directory_is_listed(kit: Any, plane: Any, api: httpx.Client, tmp_path: Any,
                                   monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    models = tmp_path / "models"
    (models / "hf-model").mkdir(parents=True)
    (models / "hf-model" / "config.json").write_text("{}")
    (models / "small.gguf").write_bytes(b"GGUF")
    (models / "notes.txt").write_text("not a model")
    monkeypatch.setenv("MESHNET_MODELS", str(models))
    ids = [m["id"] for m in api.get("/v1/models").json()["data"]]
    assert ids == ["demo", "hf-model", "small.gguf"]
    assert api.get("/v1/models/small.gguf").json()["id"] == "small.gguf"
    assert_openai_error(api.get("/v1/models/notes.txt"), 404)


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({**CHAT, "n": 2}, 400, "n"),
        ({**CHAT, "temperature": 3}, 400, "temperature"),
        ({**CHAT, "presence_penalty": -2.5}, 400, "presence_penalty"),
        ({**CHAT, "model": "no-such-model"}, 404, "model"),
        ({**CHAT, "messages": []}, 400, "messages"),
        ({**CHAT, "messages": [{"role": "tool", "content": "x"}]}, 400, "messages.0.role"),
        (
            {**CHAT, "messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
            400,
            "messages.0.content",
        ),
        ({"messages": CHAT["messages"]}, 400, "model"),
    ],
)
def test_bad_requests_get_openai_error_bodies(
    kit: Any, api: httpx.Client, body: dict[str, Any], status: int, param: str
) -> None:
    with StandInAgent(kit, ["x"]):
        assert_openai_error(api.post("/v1/chat/completions", json=body), status, param)


def test_malformed_json_and_missing_agent(kit: Any, api: httpx.Client) -> None:
    headers = {"content-type": "application/json"}
    assert_openai_error(api.post("/v1/chat/completions", content=b"{nope", headers=headers), 400)
    response = api.post("/v1/completions", json={"model": "demo", "prompt": "Hi"})
    assert_openai_error(response, 503)
    assert "mesh start" in response.json()["error"]["message"]


def test_chat_completion_shape_usage_and_job(kit: Any, api: httpx.Client) -> None:
    with StandInAgent(kit, ["Hel", "lo", "!"]):
        answer = api.post("/v1/chat/completions", json={**CHAT, "seed": 7, "stop": "END"}).json()
    assert answer["object"] == "chat.completion" and answer["model"] == "demo"
    assert answer["choices"] == [{"index": 0, "message": {"role": "assistant", "content": "Hello!"},
                                  "finish_reason": "length", "logprobs": None}]  # fmt: skip
    assert answer["usage"] == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    with Store.open(kit.home.root) as store:
        (job,) = store.list("Job")
    assert isinstance(job, Job) and answer["id"] == f"chatcmpl-{job.metadata.name}"
    assert job.metadata.annotations[CLIENT_ANNOTATION] == "apikey:tester"
    assert job.spec.messages is not None and job.spec.messages[0].content == "Hi"
    assert (job.spec.max_tokens, job.spec.seed, job.spec.stop) == (4, 7, ["END"])


def test_streamed_chat_chunks_end_with_done(kit: Any, api: httpx.Client) -> None:
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    with StandInAgent(kit, ["Hel", "lo"]):
        events = sse_events(api.post("/v1/chat/completions", json=body).text)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Hello"
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "length"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 7


def test_streamed_text_completion(kit: Any, api: httpx.Client) -> None:
    body = {"model": "demo", "prompt": ["Once"], "stream": True, "max_tokens": 2}
    with StandInAgent(kit, [" upon", " a"]):
        events = sse_events(api.post("/v1/completions", json=body).text)
    assert events[-1] == "[DONE]"
    assert "".join(e["choices"][0]["text"] for e in events[:-1]) == " upon a"
    assert all(e["object"] == "text_completion" for e in events[:-1])


def _job_cancelled(kit: Any) -> bool:
    with Store.open(kit.home.root) as store:
        jobs = store.list("Job")
    return bool(jobs) and CANCEL_ANNOTATION in jobs[0].metadata.annotations


def _job_phase(store: Store) -> str | None:
    job = store.list("Job")[0]
    assert isinstance(job, Job)
    return job.status.phase


def _wait(kit: Any, predicate: Callable[[], object], what: str) -> None:
    """Until ``predicate`` holds, rechecked at each store change the agent pushes."""
    for change in AgentClient(kit.home.agent_socket).watch(idle=10.0):
        if predicate():
            return
        assert change is not None, f"no store change for 10 s waiting for {what}"


def test_stream_client_that_disconnects_cancels_its_job(kit: Any, api: httpx.Client) -> None:
    with StandInAgent(kit, [], hold=True):
        with api.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as response:
            first = next(response.iter_lines())
            assert first.startswith("data: ") and '"role":"assistant"' in first
        _wait(kit, lambda: _job_cancelled(kit), "the job to be cancelled")
        with Store.open(kit.home.root) as store:
            _wait(kit, lambda: _job_phase(store) == "Failed", "the job to fail")


def test_waiting_client_that_disconnects_cancels_its_job(kit: Any, plane: Any, key: str) -> None:
    body = json.dumps({"model": "demo", "prompt": "Hi"}).encode()
    request = (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Authorization: Bearer " + key.encode() + b"\r\nContent-Length: "
               + str(len(body)).encode() + b"\r\n\r\n" + body)  # fmt: skip
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with StandInAgent(kit, [], hold=True):
        raw = socket.create_connection(("127.0.0.1", plane.plane.port))
        with context.wrap_socket(raw) as tls:
            tls.sendall(request)
            with Store.open(kit.home.root) as store:
                _wait(kit, lambda: store.list("Job") != [], "the job to be created")
        _wait(kit, lambda: _job_cancelled(kit), "the job to be cancelled")


def _request(kit: Any, key: str, host: str, from_lan: bool) -> Any:
    from types import SimpleNamespace

    from starlette.requests import Request

    from reconciler.controlplane.state import AppState

    app = SimpleNamespace(
        state=SimpleNamespace(meshnet=AppState(kit.home, [], api_keys_from_lan=from_lan))
    )
    scope = {"type": "http", "app": app, "client": (host, 40000), "state": {},
             "headers": [(b"authorization", f"Bearer {key}".encode())]}  # fmt: skip
    return Request(scope)


def test_control_plane_takes_api_keys_from_this_device_only_by_default(kit: Any, key: str) -> None:
    from reconciler.controlplane.apiauth import require_client
    from reconciler.controlplane.apierrors import ApiError

    def client_id(host: str, from_lan: bool) -> str:
        return asyncio.run(require_client(_request(kit, key, host, from_lan))).client_id

    assert client_id("127.0.0.1", False) == "apikey:tester"
    with pytest.raises(ApiError) as refused:
        client_id("192.0.2.7", False)
    assert refused.value.status == 403 and "--api-lan" in refused.value.message
    assert client_id("192.0.2.7", True) == "apikey:tester"
