"""What :class:`~reconciler.jobs.machine.JobMachine` tells its driver.

Messages to send come from ``messages_to_send()`` as :class:`Send`; everything else is
an event from ``next_event()``. The driver owns the engine: ``LoadSlice``,
``StartSlice`` and ``StopSlice`` are orders to it, and it reports what the engine did
back through the machine's ``slice_*`` inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.jobs.coordinator import Token
from reconciler.jobs.errors import JobFailed
from reconciler.jobs.messages import JobOffer
from reconciler.jobs.results import JobResult


@dataclass(frozen=True)
class Send:
    """A CONTROL payload for ``node``; an ``offer`` that cannot be sent must be reported
    back with ``JobMachine.unreachable`` (the job cannot run without that member)."""

    node: str
    payload: bytes
    session: int
    offer: bool = False


@dataclass(frozen=True)
class LoadSlice:
    """Load this node's rank of ``offer`` (a thread); report ``slice_loaded``/``_failed``."""

    offer: JobOffer
    coordinator: str


@dataclass(frozen=True)
class StartSlice:
    """Run the loaded rank's generation loop (a thread)."""

    session: int


@dataclass(frozen=True)
class StopSlice:
    """Abort the rank: its waiting collectives raise, nothing more is reported."""

    session: int
    reason: str


@dataclass(frozen=True)
class Progress:
    """A participant of a job coordinated here loaded ``fraction`` of its slice."""

    session: int
    node_id: str
    fraction: float


@dataclass(frozen=True)
class TokenOut:
    """A token of a job coordinated here (from this node's own rank)."""

    session: int
    token: Token


@dataclass(frozen=True)
class JobSucceeded:
    """A job coordinated here ended with a result; ``note`` says what was missing."""

    session: int
    result: JobResult
    note: str = ""


@dataclass(frozen=True)
class JobEnded:
    """A job coordinated here failed (JOB_ABORT has gone to its members)."""

    session: int
    error: JobFailed


@dataclass(frozen=True)
class FrameDropped:
    """A control frame was malformed or unexpected; counted in ``drops[reason]``."""

    reason: str
    detail: str = ""


Event = (
    LoadSlice
    | StartSlice
    | StopSlice
    | Progress
    | TokenOut
    | JobSucceeded
    | JobEnded
    | FrameDropped
)
