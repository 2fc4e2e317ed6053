"""Which waiting Job runs next: round-robin among clients, first come first served
within one.

Every Job may name its client in the annotation ``meshnet.dev/client`` (the OpenAI API
sets it to the API key or member that sent the request; jobs without it share the
client ``""``). A pool runs at most ``slots`` jobs at a time. Waiting jobs go in rounds:
a client's k-th waiting job (oldest first) is in round k; within a round, the client
whose last job started longest ago (or never) goes first, then the oldest job. So a
client that sends ten requests at once cannot starve one that sends one, and two busy
clients take turns. Pure: no I/O; the agent passes in when each client last started.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

CLIENT_ANNOTATION = "meshnet.dev/client"
CANCEL_ANNOTATION = "meshnet.dev/cancel"
SLOTS_PER_POOL = 1
NEVER = -math.inf


@dataclass(frozen=True)
class Waiting:
    """A job waiting for its turn."""

    name: str
    client: str
    created: str  # ISO 8601 (sorts in time order)


def fair_order(
    waiting: Iterable[Waiting], last_start: Mapping[str, float] | None = None
) -> list[str]:
    """Names of the waiting jobs in the order they should start (``last_start``: when
    each client's latest job started, on any monotonic clock)."""
    last = last_start or {}
    rounds: Counter[str] = Counter()
    keyed = []
    for job in sorted(waiting, key=lambda w: (w.created, w.name)):
        keyed.append(
            ((rounds[job.client], last.get(job.client, NEVER), job.created, job.name), job.name)
        )
        rounds[job.client] += 1
    return [name for _, name in sorted(keyed)]


def jobs_ahead(
    name: str,
    waiting: Iterable[Waiting],
    running: int = 0,
    last_start: Mapping[str, float] | None = None,
    slots: int = SLOTS_PER_POOL,
) -> int:
    """How many jobs must start (or finish) before ``name`` may start; 0: it may now."""
    order = fair_order(waiting, last_start)
    if name not in order:
        return 0
    free = max(0, slots - running)
    index = order.index(name)
    return 0 if index < free else index - free + 1
