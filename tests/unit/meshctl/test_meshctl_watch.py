"""`meshctl get -w`: the agent pushes each move of the store's revision (its local API's
``watch``); the objects that changed are printed; without an agent the store is read."""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from manifests import Job, Pool
from meshctl import storewatch
from meshctl.storewatch import store_moves, watch_kind
from reconciler.home import Home
from reconciler.store import Store
from tests.agent_thread import idle_runner, local_api_thread

SPEC = {"pool": "p", "model": "demo", "prompt": "hi"}


def _job(name: str) -> Job:
    return Job.model_validate({"metadata": {"name": name}, "spec": SPEC})


@pytest.fixture
def store(home: Home) -> Iterator[Store]:
    with Store.open(home.root) as opened:
        opened.apply(Pool.model_validate({"metadata": {"name": "p"}, "spec": {}}))
        opened.apply(_job("a"))
        yield opened


def test_the_agent_pushes_each_write_of_another_process(home: Home, store: Store) -> None:
    with local_api_thread(home, idle_runner(), watch_store=True):
        moves = store_moves(store)
        first = next(moves)
        assert first == store.revision()
        store.apply(_job("b"))  # pings the agent's notify socket, as meshctl apply does
        second = next(moves)
        store.delete("Job", "b")
        third = next(moves)
        moves.close()
    assert first < second < third == store.revision()


def _moves(store: Store) -> Iterator[int]:
    """The store's revision now, then after each of three writes: a new Job ``b``, a
    Pool's status (another kind: nothing printed), Job ``a`` Running."""
    yield store.revision()
    store.apply(_job("b"))
    yield store.revision()
    store.patch_status("Pool", "p", {"phase": "Ready"})
    yield store.revision()
    store.patch_status("Job", "a", {"phase": "Running"})
    yield store.revision()


def test_changed_objects_of_the_kind_are_printed(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    watch_kind(store, "Job", None, "json", _moves(store))
    printed = [json.loads(chunk) for chunk in _documents(capsys.readouterr().out)]
    assert [[i["metadata"]["name"] for i in doc["items"]] for doc in printed] == [["b"], ["a"]]
    assert printed[1]["items"][0]["status"]["phase"] == "Running"


def test_a_table_watch_prints_rows_without_repeating_the_header(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    watch_kind(store, "Job", None, "table", _moves(store))
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert [line.split()[0] for line in lines] == ["b", "a"]  # no NAME header line
    assert "Running" in lines[1]


def _documents(out: str) -> list[str]:
    """Each printed JSON document (they follow one another)."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while at < len(out.rstrip()):
        while out[at].isspace():
            at += 1
        _, end = decoder.raw_decode(out, at)
        found.append(out[at:end])
        at = end
    return found


def test_without_an_agent_the_store_is_read(
    home: Home, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert not home.agent_socket.exists()
    writes = iter([None, _job("b")])  # a quiet read, then one after a write

    def sleep(_: float) -> None:
        job = next(writes)
        if job is not None:
            store.apply(job)

    monkeypatch.setattr(storewatch, "time", SimpleNamespace(sleep=sleep))
    moves = store_moves(store)
    first = next(moves)
    assert next(moves) == store.revision() > first  # the quiet read yielded nothing
