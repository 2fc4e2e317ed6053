"""The agent's local API: a private socket, replaced when stale, removed at stop, and
pushing a followed job's events to a client of meshctl's agentclient."""

from __future__ import annotations

import asyncio
import socket
import stat
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from meshctl.agentclient import AgentClient, AgentGone, NoAgent
from reconciler.localapi import LocalApi, LocalApiError
from reconciler.runtime.jobfeed import Follower, JobFeed, phase_event, token_event

SNAPSHOT: dict[str, Any] = {"event": "snapshot", "phase": None, "tokens": [], "text": ""}


def _stale_socket(path: Path) -> None:
    """A socket file nobody listens on: what an agent killed with -9 leaves."""
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()


@asynccontextmanager
async def _serving(
    path: Path, follow: Callable[[str], Follower] | None = None
) -> AsyncIterator[LocalApi]:
    feed = JobFeed()
    api = LocalApi(path, follow or (lambda name: feed.subscribe(name, dict(SNAPSHOT))))
    stop = asyncio.Event()
    task = asyncio.create_task(api.serve(stop))
    ready = asyncio.create_task(api.ready.wait())
    await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        ready.cancel()
        task.result()  # raises what serve() raised
    try:
        yield api
    finally:
        stop.set()
        await task


def test_the_socket_is_private_and_removed_at_stop(tmp_path: Path) -> None:
    path = tmp_path / "agent.sock"

    async def scenario() -> tuple[int, dict[str, Any]]:
        async with _serving(path):
            mode = stat.S_IMODE(path.stat().st_mode)
            answer = await asyncio.to_thread(AgentClient(path).ping)
        return mode, answer

    mode, answer = asyncio.run(scenario())
    assert mode == 0o600
    assert answer["ok"] is True and isinstance(answer["pid"], int)
    assert not path.exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # no temporary name left either


def test_a_stale_socket_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "agent.sock"
    _stale_socket(path)
    with pytest.raises(NoAgent, match="no agent answers"):
        AgentClient(path).ping()

    async def scenario() -> dict[str, Any]:
        async with _serving(path):
            return await asyncio.to_thread(AgentClient(path).ping)

    assert asyncio.run(scenario())["ok"] is True


def test_a_socket_that_answers_is_not_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "agent.sock"

    async def scenario() -> None:
        async with _serving(path):
            with pytest.raises(LocalApiError, match="another process answers"):
                async with _serving(path):
                    pass
            await asyncio.to_thread(AgentClient(path).ping)  # the first one still serves

    asyncio.run(scenario())


def test_a_client_says_plainly_when_no_agent_runs(tmp_path: Path) -> None:
    with pytest.raises(NoAgent, match=f"no agent answers on {tmp_path}/agent.sock"):
        AgentClient(tmp_path / "agent.sock").follow_job("j")


def test_a_bad_request_gets_an_error_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "agent.sock"

    def ask(raw: bytes) -> bytes:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(path))
            sock.sendall(raw)
            return sock.makefile("rb").readline()

    async def scenario() -> list[bytes]:
        async with _serving(path):
            answers = [await asyncio.to_thread(ask, raw)
                       for raw in (b"{not json\n", b"[1]\n", b'{"op": "rm -rf"}\n')]  # fmt: skip
            pong = await asyncio.to_thread(AgentClient(path).ping)
            answers.append(b"alive" if pong else b"no answer")
        return answers

    answers = asyncio.run(scenario())
    assert b"not JSON" in answers[0]
    assert b"not a JSON object" in answers[1]
    assert b"unknown request 'rm -rf'" in answers[2]
    assert answers[3] == b"alive"


def test_a_client_learns_when_the_agent_stops_mid_stream(tmp_path: Path) -> None:
    path, feed = tmp_path / "agent.sock", JobFeed()

    async def scenario() -> None:
        subscribed = asyncio.Event()

        def follow(name: str) -> Follower:
            subscribed.set()
            return feed.subscribe(name, dict(SNAPSHOT))

        api = LocalApi(path, follow)
        stop = asyncio.Event()
        serving = asyncio.create_task(api.serve(stop))
        await api.ready.wait()
        client = asyncio.create_task(
            asyncio.to_thread(lambda: list(AgentClient(path).follow_job("j")))
        )
        await subscribed.wait()
        stop.set()
        await serving
        with pytest.raises(AgentGone, match="ended the stream before the job did"):
            await client

    asyncio.run(scenario())


def test_a_follower_receives_every_token_in_order_then_the_end(tmp_path: Path) -> None:
    path, feed = tmp_path / "agent.sock", JobFeed()
    texts = ["Hel", "lo", " wor", "ld"]

    def follow(name: str) -> Follower:
        follower = feed.subscribe(name, dict(SNAPSHOT))
        loop = asyncio.get_running_loop()
        for i, text in enumerate(texts):  # produced once the client follows
            loop.call_soon(feed.publish, name, token_event(i, 10 + i, text, 0.0))
        loop.call_soon(feed.publish, name, phase_event("Succeeded"))
        loop.call_soon(feed.publish, name, token_event(9, 99, "after the end", 0.0))
        return follower

    async def scenario() -> list[Any]:
        async with _serving(path, follow):
            return await asyncio.to_thread(lambda: list(AgentClient(path).follow_job("j")))

    events = asyncio.run(scenario())
    assert events[0] == SNAPSHOT
    assert [e["text"] for e in events[1:-1]] == texts
    assert [e["id"] for e in events[1:-1]] == [10, 11, 12, 13]
    assert events[-1] == {"event": "phase", "phase": "Succeeded"}
    assert not feed.followed("j")  # the follower was dropped when the stream ended


def test_peers_and_ring_are_read_live_and_a_failing_read_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "agent.sock"
    asked: list[tuple[str, str | None]] = []

    def observe(what: str, pool: str | None) -> list[dict[str, Any]]:
        asked.append((what, pool))
        if pool == "broken":
            raise KeyError("gossip")
        return [{"pool": "p", "nodeId": "n1"}] if what == "peers" else [{"pool": "p", "epoch": 3}]

    async def scenario() -> list[Any]:
        feed = JobFeed()
        api = LocalApi(path, lambda n: feed.subscribe(n, {}), observe)
        stop = asyncio.Event()
        task = asyncio.create_task(api.serve(stop))
        await api.ready.wait()
        client = AgentClient(path)
        answers: list[Any] = [
            await asyncio.to_thread(client.observed, "peers"),
            await asyncio.to_thread(client.observed, "ring", "p"),
        ]
        try:
            await asyncio.to_thread(client.observed, "peers", "broken")
        except AgentGone as err:
            answers.append(str(err))
        stop.set()
        await task
        return answers

    peers, rings, broken = asyncio.run(scenario())
    assert peers == [{"pool": "p", "nodeId": "n1"}]
    assert rings == [{"pool": "p", "epoch": 3}]
    assert "reading peers failed: KeyError" in broken
    assert asked == [("peers", None), ("ring", "p"), ("peers", "broken")]


def test_interfaces_are_the_agents_view_and_bad_settings_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`meshctl doctor` and `mesh pool-info` ask the agent which interfaces it beacons on
    (its environment pins them here to loopback) and where other devices reach it."""
    path = tmp_path / "agent.sock"
    monkeypatch.setenv("MESHNET_BEACON_PORT", "45123")

    async def scenario() -> tuple[dict[str, Any], bytes]:
        async with _serving(path):
            report = await asyncio.to_thread(AgentClient(path).interfaces, {"interface": "auto"})
            reader, writer = await asyncio.open_unix_connection(str(path))
            writer.write(b'{"op": "interfaces", "discovery": {"port": "many"}}\n')
            refused = await reader.readline()
            writer.close()
        return report, refused

    report, refused = asyncio.run(scenario())
    assert report["address"] == "127.0.0.1"
    assert [c["address"] for c in report["chosen"]] == ["127.0.0.1"]
    assert report["port"] == 45123 and "MESHNET_BEACON_INTERFACE" in report["why"]
    assert report["interfaces"]["lo"] == "127.0.0.1"
    assert b"bad discovery settings" in refused


def test_an_agent_that_refuses_interfaces_counts_as_none(tmp_path: Path) -> None:
    """An older agent answers an unknown op with an error: the CLI then probes itself."""
    path = tmp_path / "agent.sock"

    async def scenario() -> None:
        async with _serving(path):
            await asyncio.to_thread(AgentClient(path).interfaces, {"port": -1})

    with pytest.raises(NoAgent, match="refused 'interfaces'"):
        asyncio.run(scenario())


def test_reconcile_runs_the_agents_executor_and_reports_its_failure(tmp_path: Path) -> None:
    path = tmp_path / "agent.sock"
    done: list[tuple[str, str]] = []

    def reconcile(kind: str, name: str) -> None:
        if name == "broken":
            raise RuntimeError("handler bug")
        done.append((kind, name))

    async def ask(request: bytes) -> bytes:
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(request + b"\n")
        answer = await reader.readline()
        writer.close()
        return answer

    async def scenario() -> list[bytes]:
        feed = JobFeed()
        api = LocalApi(path, lambda n: feed.subscribe(n, {}), None, reconcile)
        stop = asyncio.Event()
        task = asyncio.create_task(api.serve(stop))
        await api.ready.wait()
        await asyncio.to_thread(AgentClient(path).reconcile, "Pool", "lab")
        answers = [await ask(b'{"op": "reconcile", "kind": "Pool", "name": "broken"}'),
                   await ask(b'{"op": "reconcile", "kind": "Secret", "name": "x"}')]  # fmt: skip
        stop.set()
        await task
        return answers

    broken, unknown = asyncio.run(scenario())
    assert done == [("Pool", "lab")]
    assert b"reconciling Pool broken failed: RuntimeError: handler bug" in broken
    assert b"needs a kind (Pool, Member, Job)" in unknown


def test_an_agent_without_reconcile_counts_as_none(tmp_path: Path) -> None:
    path = tmp_path / "agent.sock"

    async def scenario() -> None:
        async with _serving(path):
            await asyncio.to_thread(AgentClient(path).reconcile, "Pool", "lab")

    with pytest.raises(NoAgent, match="refused 'reconcile'"):
        asyncio.run(scenario())
