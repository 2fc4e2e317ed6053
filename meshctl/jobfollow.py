"""A job's text as it comes, for `mesh inference`, `meshctl logs -f` and `mesh chat`.

Pushed by the agent over its local API (agent.sock next to the store: ``follow-job``)
when it answers: the runner's tokens and phases, and a ``status`` event whenever the
stored Job changes, so nothing here polls. Where no agent answers (none runs, or one
older than the local API) the store is read every POLL_SECONDS instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from typing import Any

from manifests import Job
from meshctl.agentclient import AgentClient, AgentGone, NoAgent
from reconciler.home import Home
from reconciler.store import Store

POLL_SECONDS = 0.05  # following through the store: an agent without its local API
TERMINAL = ("Succeeded", "Failed")

Texts = Generator[str, None, dict[str, Any]]


def job_text(store: Store, name: str, waiting: Callable[[str], None] = lambda _: None) -> Texts:
    """Yield job ``name``'s text as it is produced; return its final status. ``waiting``
    hears what the job waits for (load progress, conditions) until its text begins."""
    status = _status(_job(store, name))
    if status.get("phase") in TERMINAL:
        if status.get("output"):
            yield status["output"]
        return status
    try:
        stream = AgentClient(Home(store.path.parent).agent_socket).follow_job(name)
    except NoAgent:
        return (yield from _polled(store, name, waiting, 0))
    shown = 0  # characters of text given
    try:
        for event in stream:
            kind = event["event"] if event is not None else ""
            text = str(event.get("text", "")) if event and kind in ("snapshot", "token") else ""
            if text:
                shown += len(text)
                yield text
            elif shown == 0 and kind == "status":  # the stored Job changed: say what it waits for
                waiting(waiting_text(_job(store, name)))
            elif shown == 0 and kind == "progress" and event is not None:
                waiting(f"loading slices: {str(event['node'])[-6:]} {float(event['fraction']):.0%}")
    except AgentGone as err:
        waiting(f"{err}: following the store")
        return (yield from _polled(store, name, waiting, shown))
    status = _status(_job(store, name))
    rest = (status.get("output") or "")[shown:]  # the final text, should a token be missed
    if rest:
        yield rest
    return status


def _polled(store: Store, name: str, waiting: Callable[[str], None], shown: int) -> Texts:
    while True:
        job = _job(store, name)
        status = _status(job)
        text = status.get("output") or ""
        if len(text) > shown:
            yield text[shown:]
            shown = len(text)
        elif shown == 0:
            waiting(waiting_text(job))
        if status.get("phase") in TERMINAL:
            return status
        time.sleep(POLL_SECONDS)


def waiting_text(job: Job) -> str:
    ready = job.status.condition("Ready")
    progress = job.status.load_progress or {}
    if progress:
        loaded = ", ".join(f"{node[-6:]} {fraction:.0%}" for node, fraction in progress.items())
        return f"loading slices: {loaded}"
    return f"{job.status.phase or 'Pending'}: {ready.message if ready else 'waiting for the agent'}"


def _job(store: Store, name: str) -> Job:
    job = store.require("Job", name)
    assert isinstance(job, Job)
    return job


def _status(job: Job) -> dict[str, Any]:
    return job.status.model_dump(mode="json", by_alias=True, exclude_none=True)
