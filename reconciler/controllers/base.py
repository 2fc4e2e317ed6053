"""What controllers share: outcomes, condition specs, and the shape of a plan.

A controller is a pure function `plan(obj, observed, now) -> Plan`. The executor
performs the plan's actions (I/O) and writes the status; exceptions become conditions:

    TemporaryError(reason, message, delay)  retried with backoff; Ready=False, Reconciling
    PermanentError(reason, message)         not retried until the spec changes; Stalled
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

ConditionStatus = Literal["True", "False", "Unknown"]


class TemporaryError(Exception):
    """A failure worth retrying after a delay (seconds)."""

    def __init__(self, reason: str, message: str, delay: float | None = None) -> None:
        super().__init__(message)
        self.reason, self.message, self.delay = reason, message, delay


class PermanentError(Exception):
    """A failure that retrying will not fix until the user changes the spec."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


@dataclass(frozen=True)
class ConditionSpec:
    """A condition a plan wants set (the executor keeps lastTransitionTime stable)."""

    type: str
    status: ConditionStatus
    reason: str
    message: str = ""


@dataclass(frozen=True)
class Action:
    """Something for the executor to do; subclasses carry the arguments."""


@dataclass
class Plan:
    """What a controller wants: actions to perform, then the status to write.

    `status` holds the status fields besides conditions and observedGeneration;
    `requeue_after` asks for another look after that many seconds.
    """

    actions: list[Action] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)
    conditions: list[ConditionSpec] = field(default_factory=list)
    requeue_after: float | None = None


def ready(reason: str, message: str = "") -> ConditionSpec:
    return ConditionSpec("Ready", "True", reason, message)


def not_ready(reason: str, message: str) -> ConditionSpec:
    return ConditionSpec("Ready", "False", reason, message)
