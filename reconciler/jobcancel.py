"""Asking the agent to stop a job: the cancel annotation on its Job, written to the store
(by `mesh chat` on Ctrl+C, and by the OpenAI API when its client disconnects)."""

from __future__ import annotations

from manifests import Job
from reconciler.controllers.jobqueue import CANCEL_ANNOTATION
from reconciler.store import Conflict, Store

FINAL = ("Succeeded", "Failed")


def request_cancel(store: Store, name: str, reason: str) -> None:
    """Ask the agent to stop a job (no-op once it has finished or is gone; retried when
    another writer changed the Job meanwhile)."""
    for _ in range(5):
        job = store.get("Job", name)
        if not isinstance(job, Job) or job.status.phase in FINAL:
            return
        if CANCEL_ANNOTATION in job.metadata.annotations:
            return
        changed = job.model_copy(deep=True)
        changed.metadata.annotations[CANCEL_ANNOTATION] = reason
        try:
            store.apply(changed)
            return
        except Conflict:
            continue
