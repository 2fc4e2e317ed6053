"""How store writes reach the agent without polling: this connection's listeners, a
datagram to the agent's notify socket for other connections, and volatile writes that
change what is stored but wake nobody."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from manifests import Job, Pool
from reconciler.store import Store
from reconciler.storenotify import StoreWatch, bind_notify_socket, notify_path


def _pool(name: str = "p") -> Pool:
    return Pool.model_validate({"metadata": {"name": name}, "spec": {}})


def _job(name: str = "j") -> Job:
    return Job.model_validate({"metadata": {"name": name}, "spec": {"pool": "p", "prompt": "hi"}})


def _pings(sock: socket.socket) -> int:
    """Datagrams queued on the socket (a Unix datagram is queued by sendto itself)."""
    count = 0
    while True:
        try:
            sock.recv(64)
        except BlockingIOError:
            return count
        count += 1


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[socket.socket]:
    sock = bind_notify_socket(notify_path(tmp_path / "state.db"))
    yield sock
    sock.close()


def test_listeners_hear_committed_writes_that_bump_the_revision(tmp_path: Path) -> None:
    with Store.open(tmp_path, ping_agent=False) as store:
        heard: list[int] = []
        remove = store.on_change(lambda: heard.append(store.revision()))
        store.apply(_pool())
        assert heard == [store.revision()]  # after the commit: the new revision is readable
        store.apply(_pool())  # unchanged: no write
        store.record_event("Pool", "p", "Normal", "Seen", "an event bumps nothing")
        store.put_observed("beacons/p", {"sent": 1}, volatile=True)
        assert len(heard) == 1
        store.put_observed("ring/p", {"epoch": 1})
        assert len(heard) == 2
        remove()
        store.apply(_pool("q"))
        assert len(heard) == 2


def test_a_rolled_back_write_wakes_nobody(tmp_path: Path) -> None:
    with Store.open(tmp_path, ping_agent=False) as store:
        heard: list[str] = []
        store.on_change(lambda: heard.append("woken"))
        with pytest.raises(RuntimeError), store.transaction():
            raise RuntimeError("refused halfway")
        assert heard == []
        store.record_event("Pool", "p", "Normal", "Seen", "no bump")  # a later plain write
        assert heard == []


def test_other_writers_ping_the_agent_once_per_bumping_write(
    tmp_path: Path, notify: socket.socket
) -> None:
    with Store.open(tmp_path) as writer:
        writer.apply(_pool())
        assert _pings(notify) == 1
        writer.put_observed("peers/p", [{"lastSeen": "now"}], volatile=True)
        writer.record_event("Pool", "p", "Normal", "Seen", "not a revision")
        assert _pings(notify) == 0
        writer.put_observed("ring/p", {"epoch": 2})
        assert _pings(notify) == 1
    with Store.open(tmp_path, ping_agent=False) as agent_own:
        agent_own.apply(_pool("q"))
        assert _pings(notify) == 0


def test_writing_without_an_agent_is_quiet(tmp_path: Path) -> None:
    with Store.open(tmp_path) as writer:
        writer.apply(_pool())  # no socket: the ping is dropped, the write stands
        notify_path(writer.path).touch()  # not a socket either
        writer.apply(_pool("q"))
        assert [p.metadata.name for p in writer.list("Pool")] == ["p", "q"]


def test_volatile_status_keeps_the_resource_version(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store, Store.open(tmp_path) as reader:
        job = store.apply(_job())[0]
        revision, version = store.revision(), reader.data_version()
        store.patch_volatile("Job", "j", {"output": "Hel", "tokenIds": [1, 2]})
        seen = reader.require("Job", "j")
        assert isinstance(seen, Job) and seen.status.output == "Hel"
        assert seen.metadata.resource_version == job.metadata.resource_version
        assert store.revision() == revision
        assert reader.data_version() != version
        done = store.patch_status("Job", "j", {"phase": "Succeeded"})
        assert isinstance(done, Job) and done.status.output == "Hel"  # volatile fields stay
        assert done.metadata.resource_version != job.metadata.resource_version


def test_the_watch_wakes_on_a_write_by_another_connection(tmp_path: Path) -> None:
    async def scenario() -> int:
        woken = asyncio.Event()
        watch = StoreWatch(notify_path(tmp_path / "state.db"), woken.set)
        watch.start()
        try:
            with Store.open(tmp_path) as meshctl:
                meshctl.apply(_pool())
                meshctl.apply(_pool("q"))  # a burst: one wake-up is enough
            await asyncio.wait_for(woken.wait(), 30)
            with Store.open(tmp_path) as store:
                return len(store.list("Pool"))
        finally:
            watch.close()

    assert asyncio.run(scenario()) == 2
    assert not notify_path(tmp_path / "state.db").exists()  # removed on close
