"""The one executor: observe, plan (pure controllers), act, write status.

Every kind registers a `KindHandler`: how to observe the world for an object (I/O),
the controller's pure plan, and how to perform each action. Exceptions become
conditions: TemporaryError -> Ready=False + Reconciling, retried with exponential
backoff per object; PermanentError -> Ready=False + Stalled, left until the spec
changes; anything else is logged and treated as temporary.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from manifests import MeshObject
from reconciler.backoff import BackoffPolicy
from reconciler.conditions import ABNORMAL_TRUE, merge_conditions, ready_transition
from reconciler.controllers.base import (
    Action,
    ConditionSpec,
    PermanentError,
    Plan,
    TemporaryError,
)
from reconciler.store import Conflict, EventType, NotFound, Store, utcnow

log = logging.getLogger("meshnet.executor")

BACKOFF = BackoffPolicy(0.5, 60.0)
MAX_ROUNDS = 4


@dataclass
class KindHandler:
    """How the executor deals with one kind."""

    kind: str
    observe: Callable[[Any], Any]
    plan: Callable[[Any, Any, float], Plan]
    perform: dict[type[Action], Callable[[Any], str]] = field(default_factory=dict)
    # Whether an object is finished for good (a Job that ended): once reconciled, it is
    # looked at again only when it changes, not on every pass.
    settled: Callable[[Any], bool] | None = None


@dataclass
class _Backoff:
    failures: int
    not_before: float
    generation: int


class Executor:
    """Reconciles every object of the registered kinds, one at a time."""

    def __init__(self, store: Store, handlers: list[KindHandler]) -> None:
        self.store = store
        self.handlers = {h.kind: h for h in handlers}
        self._backoff: dict[tuple[str, str], _Backoff] = {}
        self._requeue: dict[tuple[str, str], float] = {}
        self._settled: dict[tuple[str, str], str] = {}  # key -> resourceVersion when settled

    def reconcile_all(self, now: float) -> float | None:
        """One level-triggered pass over every object; the next deadline, if any."""
        live = set()
        for kind, handler in self.handlers.items():
            for name, version in self.store.versions(kind).items():
                key = (kind, name)
                live.add(key)
                if self._settled.get(key) == version and not self._requeue_due(key, now):
                    continue  # finished and unchanged since, no look asked for: nothing to do
                obj = self.store.get(kind, name)
                if obj is not None and self._due(key, obj, now):
                    self.reconcile(handler, obj, now)
                    self._remember_settled(handler, key)
        for table in (self._backoff, self._requeue, self._settled):
            for key in [k for k in table if k not in live]:
                del table[key]
        deadlines = [b.not_before for b in self._backoff.values()] + list(self._requeue.values())
        return min(deadlines) if deadlines else None

    def _requeue_due(self, key: tuple[str, str], now: float) -> bool:
        """Whether a plan asked for another look at ``key`` by ``now`` (a Job's TTL)."""
        deadline = self._requeue.get(key)
        return deadline is not None and now >= deadline

    def _remember_settled(self, handler: KindHandler, key: tuple[str, str]) -> None:
        obj = self.store.get(*key) if handler.settled is not None else None
        if obj is not None and handler.settled is not None and handler.settled(obj):
            self._settled[key] = str(obj.metadata.resource_version)
        else:
            self._settled.pop(key, None)

    def _due(self, key: tuple[str, str], obj: MeshObject, now: float) -> bool:
        backoff = self._backoff.get(key)
        if backoff is None or backoff.generation != obj.metadata.generation:
            return True
        return now >= backoff.not_before

    def reconcile(self, handler: KindHandler, obj: MeshObject, now: float) -> None:
        """Bring one object toward its spec and record what happened."""
        try:
            self._reconcile(handler, obj, now)
        except (Conflict, NotFound):
            log.debug(
                "%s %s changed while reconciling; will look again", obj.kind, obj.metadata.name
            )

    def _reconcile(self, handler: KindHandler, obj: MeshObject, now: float) -> None:
        key = (handler.kind, obj.metadata.name)
        self._requeue.pop(key, None)
        try:
            plan = self._plan_and_act(handler, obj, now)
        except TemporaryError as err:
            delay = self._fail(key, obj, now, err.delay)
            message = f"{err.message} (retrying in {delay:.1f}s)"
            conditions = [
                ConditionSpec("Ready", "False", err.reason, message),
                ConditionSpec("Reconciling", "True", err.reason, message),
            ]
            self._write(obj, Plan(conditions=conditions), clear=("Stalled",))
        except PermanentError as err:
            self._backoff[key] = _Backoff(1, float("inf"), obj.metadata.generation or 0)
            conditions = [
                ConditionSpec("Ready", "False", err.reason, err.message),
                ConditionSpec("Stalled", "True", err.reason, err.message),
            ]
            self._write(obj, Plan(conditions=conditions), clear=("Reconciling",))
        else:
            self._backoff.pop(key, None)
            if plan.requeue_after is not None:
                self._requeue[key] = now + plan.requeue_after
            self._write(obj, plan, clear=ABNORMAL_TRUE)

    def _plan_and_act(self, handler: KindHandler, obj: MeshObject, now: float) -> Plan:
        for _ in range(MAX_ROUNDS):
            try:
                plan = handler.plan(obj, handler.observe(obj), now)
                if not plan.actions:
                    return plan
                for action in plan.actions:
                    message = handler.perform[type(action)](action)
                    reason = getattr(action, "event_reason", type(action).__name__)
                    self.store.record_event(
                        obj.kind, obj.metadata.name, "Normal", str(reason), message
                    )
            except (TemporaryError, PermanentError, Conflict, NotFound):
                raise
            except Exception as err:  # the executor turns every failure into a condition
                log.exception("reconciling %s %s failed", obj.kind, obj.metadata.name)
                raise TemporaryError("InternalError", f"{type(err).__name__}: {err}") from err
        raise TemporaryError("NotConverging", f"still acting after {MAX_ROUNDS} rounds")

    def _fail(
        self, key: tuple[str, str], obj: MeshObject, now: float, delay: float | None
    ) -> float:
        previous = self._backoff.get(key)
        failures = previous.failures + 1 if previous else 1
        wait = delay if delay is not None else BACKOFF.delay(failures)
        self._backoff[key] = _Backoff(failures, now + wait, obj.metadata.generation or 0)
        return wait

    def _write(self, obj: MeshObject, plan: Plan, clear: tuple[str, ...]) -> None:
        current = obj.status.model_dump(mode="json", by_alias=True, exclude_none=True)
        before = list(current.get("conditions", []))
        status = {**current, **plan.status}
        status["conditions"] = merge_conditions(before, plan.conditions, utcnow(), clear)
        status["observedGeneration"] = obj.metadata.generation
        self.store.update_status(obj.kind, obj.metadata.name, status, obj.metadata.resource_version)
        change = ready_transition(before, status["conditions"])
        if change is not None:
            event_type: EventType = "Normal" if change["status"] == "True" else "Warning"
            self.store.record_event(
                obj.kind, obj.metadata.name, event_type, change["reason"], change["message"]
            )
