"""The agent wakes its executor and supervisor on store events, not by polling: its own
writes through the store's listener, other processes' through the notify socket, and
volatile observed state not at all."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from manifests import Pool
from reconciler.daemon import Agent, AgentOptions
from reconciler.home import Home
from reconciler.store import Store


def _pool(name: str) -> Pool:
    return Pool.model_validate({"metadata": {"name": name}, "spec": {}})


Scenario = Callable[[Agent, Store], Awaitable[None]]


def _with_agent(home: Home, scenario: Scenario) -> None:
    """Run ``scenario`` against an agent whose store watch runs (nothing else does)."""

    async def run() -> None:
        with Store.open(home.root, ping_agent=False) as store:
            agent = Agent(AgentOptions(home), store)
            watching = asyncio.create_task(agent._watch_store())
            await asyncio.wait_for(agent.wake.wait(), 30)  # the first look at the store
            agent.wake.clear()
            agent.supervise.clear()
            try:
                await scenario(agent, store)
            finally:
                agent.stop.set()
                await watching

    asyncio.run(run())


def test_a_write_by_another_process_wakes_the_executor_and_the_supervisor(home: Home) -> None:
    async def scenario(agent: Agent, store: Store) -> None:
        with Store.open(home.root) as meshctl:  # as `meshctl apply` writes
            meshctl.apply(_pool("p"))
        await asyncio.wait_for(agent.wake.wait(), 30)
        assert agent.supervise.is_set()

    _with_agent(home, scenario)


def test_the_agents_own_writes_wake_it_at_once(home: Home) -> None:
    async def scenario(agent: Agent, store: Store) -> None:
        store.put_observed("join/m", {"state": "waiting"})
        assert agent.wake.is_set() and agent.supervise.is_set()

    _with_agent(home, scenario)


def test_volatile_observed_state_triggers_no_executor_pass(home: Home) -> None:
    async def scenario(agent: Agent, store: Store) -> None:
        passes: list[float] = []
        passed = asyncio.Event()

        def reconcile_all(now: float) -> None:
            passes.append(now)
            passed.set()

        agent.executor.reconcile_all = reconcile_all  # type: ignore[method-assign]
        reconciling = asyncio.create_task(agent._reconcile_loop())
        await asyncio.wait_for(passed.wait(), 30)  # the first pass, at start
        passed.clear()
        for count in range(20):  # what a pool runtime writes: last seen, counters
            store.put_observed("peers/p", [{"nodeId": "n", "lastSeen": str(count)}], True)
            store.put_observed("beacons/p", {"sent": count}, volatile=True)
        assert not agent.wake.is_set() and not agent.supervise.is_set()
        store.put_observed("ring/p", {"epoch": 1})  # a decisive change: one more pass
        await asyncio.wait_for(passed.wait(), 30)
        assert len(passes) == 2
        agent.stop.set()
        agent.wake.set()
        await reconciling

    _with_agent(home, scenario)


def test_the_notify_socket_goes_with_the_agent(home: Home) -> None:
    socket_path = Path(home.root) / "agent.notify"

    async def scenario(agent: Agent, store: Store) -> None:
        assert socket_path.is_socket()

    _with_agent(home, scenario)
    assert not socket_path.exists()


def test_the_local_apis_streams_hear_every_move_of_the_revision(home: Home) -> None:
    """The agent's change hub (what `watch` and `follow-job` wait on) gets its own
    writes and other processes' alike."""

    async def scenario(agent: Agent, store: Store) -> None:
        before = agent.changes.revision
        waiting = asyncio.create_task(agent.changes.changed(before))
        store.put_observed("join/m", {"state": "waiting"})  # the agent's own write
        own = await waiting
        assert own == store.revision() != before
        with Store.open(home.root) as meshctl:  # another process's
            meshctl.apply(_pool("p"))
        assert await asyncio.wait_for(agent.changes.changed(own), 30) == store.revision()

    _with_agent(home, scenario)
