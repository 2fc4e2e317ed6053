"""The object store: versions, generations, status writes, events, concurrency, damage."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from manifests import Pool, load_text
from reconciler.store import Conflict, NotFound, Store, StoreError


def pool(name: str = "p", admission: str = "token", labels: str = "{}") -> Pool:
    text = (
        "apiVersion: meshnet.dev/v1alpha1\nkind: Pool\n"
        f"metadata: {{name: {name}, labels: {labels}}}\nspec: {{admission: {admission}}}\n"
    )
    obj = load_text(text, "t.yaml")[0].obj
    assert isinstance(obj, Pool)
    return obj


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(tmp_path)


def test_create_then_unchanged_then_configured(store: Store) -> None:
    created, outcome = store.apply(pool())
    assert outcome == "created"
    assert created.metadata.generation == 1 and created.metadata.uid
    same, outcome = store.apply(pool())
    assert outcome == "unchanged"
    assert same.metadata.resource_version == created.metadata.resource_version
    changed, outcome = store.apply(pool(admission="auto"))
    assert outcome == "configured" and changed.metadata.generation == 2
    assert changed.metadata.uid == created.metadata.uid


def test_label_change_bumps_version_not_generation(store: Store) -> None:
    first, _ = store.apply(pool())
    second, outcome = store.apply(pool(labels="{team: a}"))
    assert outcome == "configured"
    assert second.metadata.generation == first.metadata.generation
    assert int(second.metadata.resource_version or 0) > int(first.metadata.resource_version or 0)


def test_status_write_keeps_generation_and_is_refused_when_stale(store: Store) -> None:
    obj, _ = store.apply(pool())
    updated = store.update_status("Pool", "p", {"poolId": "pool-1"}, obj.metadata.resource_version)
    assert isinstance(updated, Pool)
    assert updated.status.pool_id == "pool-1"
    assert updated.metadata.generation == 1
    with pytest.raises(Conflict):
        store.update_status("Pool", "p", {"poolId": "pool-2"}, obj.metadata.resource_version)
    current = store.require("Pool", "p")
    assert isinstance(current, Pool)
    assert current.status.pool_id == "pool-1"


def test_apply_never_writes_status(store: Store) -> None:
    obj = pool()
    obj.status.pool_id = "forged"
    stored, _ = store.apply(obj)
    assert isinstance(stored, Pool)
    assert stored.status.pool_id is None


def test_apply_with_stale_resource_version_is_refused(store: Store) -> None:
    first, _ = store.apply(pool())
    store.apply(pool(admission="auto"))
    stale = pool(admission="approve")
    stale.metadata.resource_version = first.metadata.resource_version
    with pytest.raises(Conflict, match="modified"):
        store.apply(stale)


def test_delete_and_not_found(store: Store) -> None:
    store.apply(pool())
    assert store.delete("Pool", "p") is True
    assert store.delete("Pool", "p") is False
    with pytest.raises(NotFound):
        store.require("Pool", "p")
    with pytest.raises(NotFound):
        store.update_status("Pool", "p", {})


def test_events_are_deduplicated_with_a_count(store: Store) -> None:
    for _ in range(3):
        store.record_event("Pool", "p", "Warning", "NoRoot", "missing")
    store.record_event("Pool", "p", "Normal", "Created", "ok")
    events = store.events("Pool", "p")
    assert [(e.reason, e.count) for e in events] == [("NoRoot", 3), ("Created", 1)]


def test_inventory_tracks_the_source_file(store: Store) -> None:
    store.apply(pool("a"), source="/x/a.yaml")
    store.apply(pool("b"))
    assert store.inventory("/x/a.yaml") == [("Pool", "a")]
    assert store.source_of("Pool", "b") is None
    assert store.sources() == ["/x/a.yaml"]


def _writer(path: str, worker: int, count: int) -> None:
    with Store(Path(path)) as store:
        for i in range(count):
            store.apply(pool(f"w{worker}-{i}"))
            store.record_event("Pool", f"w{worker}-{i}", "Normal", "Made", str(i))


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    Store(db).close()
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_writer, args=(str(db), w, 25)) for w in range(4)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(60)
        assert process.exitcode == 0
    with Store(db) as store:
        assert len(store.list("Pool")) == 100
        versions = {o.metadata.resource_version for o in store.list("Pool")}
        assert len(versions) == 100
        assert len(store.events(limit=1000)) == 100


def test_corrupt_database_is_a_clear_error_and_is_left_alone(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    db.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a usable meshnet database"):
        Store(db)
    assert db.read_bytes().startswith(b"this is not sqlite")


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    Store(db).close()
    raw = sqlite3.connect(db)
    raw.execute("PRAGMA user_version = 999")
    raw.commit()
    raw.close()
    with pytest.raises(StoreError, match="newer meshnet"):
        Store(db)


def test_observed_state_round_trips(store: Store) -> None:
    assert store.get_observed("peers/p") is None
    store.put_observed("peers/p", [{"nodeId": "n1"}])
    assert store.get_observed("peers/p") == [{"nodeId": "n1"}]
