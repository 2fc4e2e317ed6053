"""`mesh inference` (and `logs -f`, `mesh chat`) follow a job through the agent's local
API: tokens appear as the agent pushes them, then whatever the final status adds; without
the socket, or for a job that has ended, the store."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace

import pytest

from manifests import Job, Pool
from meshctl import jobfollow
from meshctl.inference_cmd import follow_job
from reconciler.home import Home
from reconciler.runtime.jobfeed import Follower, JobFeed, phase_event, token_event
from reconciler.store import Store
from tests.agent_thread import idle_runner, local_api_thread

SNAPSHOT = {"event": "snapshot", "phase": "Running", "tokens": [1], "text": "Hel"}


@contextmanager
def _agent_api(home: Home, pushed: list[str]) -> Iterator[list[str]]:
    """A local API in a thread of its own that, once followed, pushes ``pushed``, then
    writes the job's final status to the store and pushes the end (as the runner does)."""
    feed, followed = JobFeed(), []

    def follow(name: str) -> Follower:
        loop = asyncio.get_running_loop()
        followed.append(name)
        follower = feed.subscribe(name, dict(SNAPSHOT))
        for i, text in enumerate(pushed):
            loop.call_soon(feed.publish, name, token_event(i + 1, 2 + i, text, 0.0))
        loop.call_soon(_succeed, home, name)
        loop.call_soon(feed.publish, name, phase_event("Succeeded"))
        return follower

    with local_api_thread(home, follow):
        yield followed


def _succeed(home: Home, name: str) -> None:
    with Store.open(home.root) as store:
        store.patch_status("Job", name, {"phase": "Succeeded", "output": "Hello world!",
                                         "completionTokens": 4})  # fmt: skip


@pytest.fixture
def store(home: Home) -> Iterator[Store]:
    with Store.open(home.root) as opened:
        opened.apply(Pool.model_validate({"metadata": {"name": "p"}, "spec": {}}))
        spec = {"pool": "p", "model": "demo", "prompt": "hi"}
        opened.apply(Job.model_validate({"metadata": {"name": "j"}, "spec": spec}))
        opened.patch_status("Job", "j", {"phase": "Running", "output": "Hel"})
        yield opened


def test_pushed_tokens_are_shown_then_the_rest_of_the_output(
    home: Home, store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    with _agent_api(home, ["lo", " world"]) as followed:
        status = follow_job(store, "j", quiet=False)
    assert followed == ["j"]
    assert capsys.readouterr().out == "Hello world!"  # "!" only in the final status
    assert (status["phase"], status["completionTokens"]) == ("Succeeded", 4)


def test_quiet_following_prints_nothing(
    home: Home, store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    with _agent_api(home, ["lo", " world"]):
        status = follow_job(store, "j", quiet=True)
    assert capsys.readouterr().out == ""
    assert status["output"] == "Hello world!"


def test_an_ended_job_is_printed_from_the_store(
    home: Home, store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    _succeed(home, "j")
    with _agent_api(home, ["not", "asked"]) as followed:
        status = follow_job(store, "j", quiet=False)
    assert (followed, capsys.readouterr().out) == ([], "Hello world!")
    assert status["phase"] == "Succeeded"


def test_without_the_socket_the_store_is_followed(
    home: Home, store: Store, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert not home.agent_socket.exists()
    # the job ends while the CLI waits between two reads of the store
    monkeypatch.setattr(jobfollow, "time", SimpleNamespace(sleep=lambda _: _succeed(home, "j")))
    status = follow_job(store, "j", quiet=False)
    assert capsys.readouterr().out == "Hello world!"
    assert status["phase"] == "Succeeded"


def test_a_job_its_controller_ends_is_followed_through_pushed_status(
    home: Home, store: Store
) -> None:
    """The runner never carries the job: the agent pushes the stored Job's changes, the
    CLI shows what it waits for and ends with the job (no store reads on a timer)."""
    heard: list[str] = []
    ready = {"type": "Ready", "status": "False", "reason": "Queued", "message": "in the queue",
             "lastTransitionTime": "2026-01-01T00:00:00Z"}  # fmt: skip

    def waiting(what: str) -> None:
        heard.append(what)
        if len(heard) == 1:
            store.patch_status("Job", "j", {"phase": "Pending", "conditions": [ready]})
        elif len(heard) == 2:
            store.patch_status("Job", "j", {"phase": "Failed", "failureReason": "X"})

    store.patch_status("Job", "j", {"phase": None, "output": None})
    with local_api_thread(home, idle_runner(), watch_store=True):
        texts = jobfollow.job_text(store, "j", waiting)
        with pytest.raises(StopIteration) as done:
            next(texts)
    assert heard[1] == "Pending: in the queue"
    assert done.value.value["phase"] == "Failed"
