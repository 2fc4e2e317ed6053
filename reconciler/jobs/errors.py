"""Errors of the distributed job machinery, named by whose fault they are.

Error tree::

    JobProtocolError (ValueError)   a peer sent a control or tensor payload we cannot read
                                    (remote fault: the frame is dropped and counted)
    JobFailed (Exception)           a job could not complete; ``reason`` is the Job's
                                    condition reason (``MemberLost``, ``LoadFailed``, ...)
    CollectiveTimeout               (a CollectiveError) some ranks sent nothing in time;
                                    names them
"""

from __future__ import annotations

from reconciler.inference.errors import CollectiveError


class Reason:
    """Reasons a job fails, as written to ``Job.status.conditions[].reason``."""

    MEMBER_LOST = "MemberLost"
    MEMBER_UNREACHABLE = "MemberUnreachable"
    NOT_IN_RING = "NotInRing"
    RING_MISMATCH = "RingMismatch"
    MODEL_NOT_FOUND = "ModelNotFound"
    LOAD_FAILED = "LoadFailed"
    LOAD_TIMEOUT = "LoadTimeout"
    GENERATION_FAILED = "GenerationFailed"
    ABORTED = "Aborted"
    INVALID_REQUEST = "InvalidRequest"
    NO_PLAN = "NoPlan"  # no plan of the asked parallelism fits the members
    PROMPT_TOO_LONG = "PromptTooLong"  # beyond the context or a frame limit (jobs/limits.py)


class JobProtocolError(ValueError):
    """A control message or tensor payload from a peer is malformed (remote fault)."""


class JobFailed(Exception):
    """A job failed; ``reason`` is a :class:`Reason` value, ``message`` says why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class CollectiveTimeout(CollectiveError):
    """A collective waited too long for the contributions of ``missing`` nodes."""

    def __init__(self, message: str, missing: tuple[str, ...]) -> None:
        super().__init__(message)
        self.missing = missing
