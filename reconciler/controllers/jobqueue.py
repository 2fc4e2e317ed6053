"""Which waiting Job runs next: fair among clients, first come first served within one.

Every Job may name its client in the annotation ``meshnet.dev/client`` (the OpenAI API
sets it to the API key or member that sent the request; jobs without it share the
client ``""``). A pool runs at most ``slots`` jobs at a time. The waiting jobs are served
round-robin across clients: a client's k-th waiting job goes in round k (a client that
already has a job running starts at round 1), and within a round the oldest goes first.
So a client that sends ten requests cannot starve one that sends one. Pure: no I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

CLIENT_ANNOTATION = "meshnet.dev/client"
CANCEL_ANNOTATION = "meshnet.dev/cancel"
SLOTS_PER_POOL = 1


@dataclass(frozen=True)
class Waiting:
    """A job waiting for its turn."""

    name: str
    client: str
    created: str  # ISO 8601 (sorts in time order)


def fair_order(waiting: Iterable[Waiting], running_clients: Iterable[str] = ()) -> list[str]:
    """Names of the waiting jobs in the order they should start."""
    rounds = Counter(running_clients)
    keyed = []
    for job in sorted(waiting, key=lambda w: (w.created, w.name)):
        keyed.append(((rounds[job.client], job.created, job.name), job.name))
        rounds[job.client] += 1
    return [name for _, name in sorted(keyed)]


def jobs_ahead(
    name: str,
    waiting: Iterable[Waiting],
    running_clients: Iterable[str] = (),
    slots: int = SLOTS_PER_POOL,
) -> int:
    """How many jobs must start (or finish) before ``name`` may start; 0: it may now."""
    running = list(running_clients)
    order = fair_order(waiting, running)
    if name not in order:
        return 0
    free = max(0, slots - len(running))
    index = order.index(name)
    return 0 if index < free else index - free + 1
