"""`meshctl get -w`: print the objects of a kind that changed, each time the store does.

The agent pushes each move of the store's revision over its local API (``watch``):
nothing here polls while it answers. Where no agent answers (none runs on this device,
or one older than the op) the store's revision is read every ``POLL_SECONDS`` instead,
so `get -w` works against a store no agent serves.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterable, Iterator

from meshctl.agentclient import AgentClient, AgentGone, NoAgent
from meshctl.render import print_objects
from reconciler.home import Home
from reconciler.store import Store

POLL_SECONDS = 0.25  # no agent answers: how often the store's revision is read


def store_moves(store: Store) -> Generator[int, None, None]:
    """The store's revision each time it moves (the first: as it is now)."""
    try:
        stream = AgentClient(Home(store.path.parent).agent_socket).watch()
    except NoAgent:
        yield from _polled(store)
        return
    try:
        for event in stream:
            if event is not None:
                yield int(event["revision"])
    except AgentGone:
        yield from _polled(store)  # the agent stopped: go on with the store
    finally:
        stream.close()


def _polled(store: Store) -> Iterator[int]:
    revision = store.revision()
    yield revision
    while True:
        time.sleep(POLL_SECONDS)
        if store.revision() != revision:
            revision = store.revision()
            yield revision


def watch_kind(
    store: Store, kind: str, name: str | None, output: str, moves: Iterable[int]
) -> None:
    """Print the objects of ``kind`` (or the one named) that changed at each move."""
    from manifests import model_for

    seen = {o.metadata.name: o.metadata.resource_version for o in store.list(kind)}
    for _ in moves:
        found = store.list(kind)
        changed = [
            o for o in found
            if seen.get(o.metadata.name) != o.metadata.resource_version
            and (name is None or o.metadata.name == name)
        ]  # fmt: skip
        seen = {o.metadata.name: o.metadata.resource_version for o in found}
        if changed:  # rows under the first listing's header, as kubectl's watch prints them
            print_objects(model_for(kind), changed, output, header=False)
