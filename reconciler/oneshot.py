"""Reconcile once, in this process: what imperative commands (`mesh pool-create`) use
to get a result at once whether or not the agent is running. The same executor and
controllers as the agent; the store serialises concurrent writers."""

from __future__ import annotations

import time

from reconciler.executor import Executor
from reconciler.handlers import build_handlers
from reconciler.home import Home
from reconciler.store import Store


def reconcile_now(home: Home, store: Store, kind: str, name: str) -> None:
    """One reconcile of one object."""
    executor = Executor(store, build_handlers(home, store))
    handler = executor.handlers[kind]
    obj = store.get(kind, name)
    if obj is not None:
        executor.reconcile(handler, obj, time.monotonic())
