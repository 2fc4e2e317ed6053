"""A job's text as it comes, for `mesh inference`, `meshctl logs -f` and `mesh chat`.

Pushed by the agent over its local API (agent.sock next to the store) when it answers;
read from the store every POLL_SECONDS otherwise (an agent older than the local API).
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
WAITING_SECONDS = 0.25  # while the agent's runner says nothing: look at the store
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
        stream = AgentClient(Home(store.path.parent).agent_socket).follow_job(name, WAITING_SECONDS)
    except NoAgent:
        return (yield from _polled(store, name, waiting, 0))
    spoken, shown = False, 0  # the agent's runner said something of this job; text given
    try:
        for event in stream:
            if event is None:  # silence: the job waits, or ended without this runner
                job = _job(store, name)
                if not spoken and job.status.phase in TERMINAL:
                    break
                if shown == 0:
                    waiting(waiting_text(job))
                continue
            spoken = spoken or event.get("phase") is not None or event["event"] != "snapshot"
            text = str(event.get("text", "")) if event["event"] in ("snapshot", "token") else ""
            if text:
                shown += len(text)
                yield text
            if event["event"] == "progress" and shown == 0:
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
