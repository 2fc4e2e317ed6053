"""One job as the control plane's streams follow it: what is known of it, anew each time
it changes (``job_news``). Shared by the job event stream (jobs.py) and the OpenAI API
(apijobs.py).

The agent pushes the changes over its local API (``follow-job``, agentfeed.py): each
token as the job runner produces it, its phases, and a ``status`` event whenever the
stored Job changed (then the Job is read from the store). Nothing polls while the agent
answers. Where no agent answers (none runs on this device, or one older than the
local API) the store is read every ``FALLBACK_SECONDS``, and whenever the agent's stream
breaks off before the job ended.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from manifests import Job
from reconciler.controlplane.agentfeed import AgentFeedError, Event, agent_stream
from reconciler.store import Store

FALLBACK_SECONDS = 1.0
FINAL = ("Succeeded", "Failed")
ORDER = {"Pending": 1, "Scheduled": 2, "Running": 3, "Succeeded": 4, "Failed": 4}


@dataclass
class JobNews:
    """A job as last known: the stored Job (None once deleted), and its phase, tokens
    and text so far (pushed ones may be ahead of the store's)."""

    job: Job | None
    phase: str | None = None
    token_ids: list[int] = field(default_factory=list)
    text: str = ""

    def _advance(self, phase: str | None) -> None:
        """Take ``phase`` if it is later than the one known (the runner says Running
        before the store does)."""
        if ORDER.get(phase or "", 0) >= ORDER.get(self.phase or "", 0):
            self.phase = phase

    @property
    def ended(self) -> bool:
        return self.job is None or self.phase in FINAL

    def read(self, store: Store, name: str) -> None:
        """Take the stored Job, and its tokens and text where they are ahead."""
        job = store.get("Job", name)
        self.job = job if isinstance(job, Job) else None
        if self.job is None:
            return
        self._advance(self.job.status.phase)
        stored, output = self.job.status.token_ids, self.job.status.output or ""
        if len(stored) >= len(self.token_ids):
            self.token_ids = list(stored)
        if self.ended or (len(output) > len(self.text) and output.startswith(self.text)):
            self.text = output  # the final output is the story (held-back stops trimmed)

    def pushed(self, event: Event) -> bool:
        """Take a pushed event; whether the store must be read for the rest."""
        kind = event.get("event")
        if kind == "phase" and isinstance(event.get("phase"), str):
            self._advance(event["phase"])
        if kind == "token" and int(event.get("index", -1)) == len(self.token_ids):
            self.token_ids.append(int(event["id"]))
            self.text += str(event.get("text", ""))
        elif kind == "snapshot" and len(event.get("tokens") or []) > len(self.token_ids):
            self.token_ids = [int(t) for t in event["tokens"]]
            self.text = str(event.get("text", ""))
        return kind in ("status", "deleted") or (kind == "phase" and self.phase in FINAL)


async def job_news(socket: Path, store: Store, name: str) -> AsyncGenerator[JobNews, None]:
    """The job now, then each time it changed, until it ended or was deleted (the last
    news then has ``ended``)."""
    news = JobNews(None)
    news.read(store, name)
    yield news
    if news.ended:
        return
    try:
        async with agent_stream(socket, {"op": "follow-job", "name": name}) as events:
            async for event in events:
                if news.pushed(event):
                    news.read(store, name)
                if event.get("event") in ("token", "snapshot", "status", "phase", "deleted"):
                    yield news
                if news.ended:
                    return
    except AgentFeedError:
        pass  # no agent, or it went away: the store is what is left
    async for polled in _polled(store, name, news):
        yield polled


async def _polled(store: Store, name: str, news: JobNews) -> AsyncIterator[JobNews]:
    """The job from the store every FALLBACK_SECONDS (no agent pushes), until it ended."""
    revision = -1
    while not news.ended:
        if store.data_version() != revision:  # tokens are volatile: no revision bump
            revision = store.data_version()
            news.read(store, name)
            yield news
        if not news.ended:
            await asyncio.sleep(FALLBACK_SECONDS)
