"""Jobs on the simulated LAN: beacons find the members, gossip forms the ring, the job
machines run a job across it (fake engine, deterministic tokens), on a simulated clock."""

from __future__ import annotations

import pytest

from reconciler.jobs import machineevents as ev
from reconciler.jobs.errors import Reason
from tests.sim.fakeengine import token_for
from tests.sim.meshsim import Links, MeshSim
from tests.sim.simnet import LinkModel

PROMPT = [3, 1, 4, 1, 5]
SLOW = LinkModel(delay=(0.001, 0.08), duplicate=0.1, reorder=0.3, reorder_delay=0.05)
LOSSY = Links(
    beacon=LinkModel(loss=0.3, duplicate=0.1),
    gossip=LinkModel(loss=0.1, duplicate=0.1, reorder=0.3, delay=(0.0005, 0.02)),
    control=SLOW,
    tensor=SLOW,
)


def pool(
    n: int, seed: int = 1, links: Links | None = None, **kw: float
) -> tuple[MeshSim, list[str]]:
    """``n`` agents that found each other by beacon and converged one ring by gossip."""
    sim = MeshSim(seed, links, **kw)
    for i in range(n):
        sim.add_agent(i)
    assert sim.run_until(sim.converged, max_time=30.0) is not None
    return sim, sim.ids()


def outcome(sim: MeshSim, node: str, session: int) -> ev.JobSucceeded | ev.JobEnded | None:
    got = sim.agents[node].outcomes.get(session)
    return None if got is None else got[1]


def idle(sim: MeshSim) -> bool:
    """No rank left anywhere: every machine and engine let go of the job."""
    return all(not a.jobs.ranks and not a.engine.ranks and not a.jobs.coordinations
               for a in sim.agents.values() if a.up)  # fmt: skip


@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("links", [None, LOSSY], ids=["clean", "lossy"])
def test_a_job_completes_across_the_ring(n: int, links: Links | None) -> None:
    sim, ids = pool(n, seed=n, links=links)
    session = sim.coordinate(ids[0], PROMPT, max_tokens=12)
    assert sim.run_until(lambda: outcome(sim, ids[0], session) is not None, 30.0) is not None
    done = outcome(sim, ids[0], session)
    assert isinstance(done, ev.JobSucceeded), done
    result = done.result
    assert result.token_ids == [token_for(tuple(PROMPT), k) for k in range(12)]
    assert result.finish_reason == "length" and result.missing_stats == []
    ring = sim.agents[ids[0]].gossip.ring
    assert ring is not None
    assert [s.node_id for s in result.members] == [s.node_id for s in ring.members]
    assert all(s.completion_tokens == 12 for s in result.members)
    assert [t for _, t in sim.agents[ids[0]].tokens[session]] == result.token_ids
    assert sim.run_until(lambda: idle(sim), 1.0) is not None


@pytest.mark.parametrize("seed", range(3))
def test_a_member_lost_mid_job_fails_it_within_the_timeouts(seed: int) -> None:
    """Gossip declares the crashed member dead; the coordinator fails the job naming it
    (long before the collectives' own timeout) and the survivor stops its rank."""
    sim, ids = pool(3, seed=seed, collective_timeout=30.0)
    coordinator, victim = ids[0], ids[2]
    session = sim.coordinate(coordinator, PROMPT, max_tokens=400)
    assert sim.run_until(lambda: bool(sim.agents[coordinator].tokens.get(session)), 10.0)
    sim.crash(victim)
    crashed = sim.now
    assert sim.run_until(lambda: outcome(sim, coordinator, session) is not None, 30.0) is not None
    at, ended = sim.agents[coordinator].outcomes[session]
    assert isinstance(ended, ev.JobEnded)
    assert ended.error.reason == Reason.MEMBER_LOST
    assert ended.error.message == f"member {victim} was lost"
    assert at - crashed <= 5.0  # gossip's detection, not the 30 s collective timeout
    assert sim.run_until(lambda: idle(sim), 1.0) is not None


def test_a_member_silent_on_the_tensor_links_times_the_collective_out() -> None:
    """Gossip still sees the member alive; the collectives' timeout names it."""
    sim, ids = pool(3, seed=4, collective_timeout=2.0)
    coordinator, silent = ids[0], ids[1]
    session = sim.coordinate(coordinator, PROMPT, max_tokens=400)
    assert sim.run_until(lambda: bool(sim.agents[coordinator].tokens.get(session)), 10.0)
    sim.cut |= {("tensor", silent, other) for other in ids}
    cut_at = sim.now
    assert sim.run_until(lambda: outcome(sim, coordinator, session) is not None, 30.0) is not None
    at, ended = sim.agents[coordinator].outcomes[session]
    assert isinstance(ended, ev.JobEnded) and ended.error.reason == Reason.MEMBER_LOST
    assert f"no contribution from {silent}" in ended.error.message
    assert at - cut_at <= 2.0 + 0.2
    assert sim.run_until(lambda: idle(sim), 1.0) is not None


def test_a_lost_ready_times_the_load_out_and_aborts_the_member() -> None:
    sim, ids = pool(2, seed=5, ready_timeout=30.0, done_timeout=5.0)
    coordinator, member = ids
    sim.cut.add(("control", member, coordinator))  # its READY never arrives
    session = sim.coordinate(coordinator, PROMPT, max_tokens=4)
    started = sim.now
    assert sim.run_until(lambda: outcome(sim, coordinator, session) is not None, 60.0) is not None
    at, ended = sim.agents[coordinator].outcomes[session]
    assert isinstance(ended, ev.JobEnded) and ended.error.reason == Reason.LOAD_TIMEOUT
    assert ended.error.message == f"not ready in time: {member}"
    assert at - started == pytest.approx(30.0)
    assert sim.run_until(lambda: idle(sim), 10.0) is not None  # the member heard ABORT


def test_same_seed_same_history() -> None:
    def history() -> tuple[object, ...]:
        sim, ids = pool(3, seed=9, links=LOSSY)
        session = sim.coordinate(ids[0], PROMPT, max_tokens=6)
        sim.run_until(lambda: outcome(sim, ids[0], session) is not None, 30.0)
        return sim.now, tuple(sim.agents[ids[0]].tokens[session])

    assert history() == history()


@pytest.mark.parametrize("seed", range(6))
def test_lost_control_messages_never_hang_a_job(seed: int) -> None:
    """A fifth of the control messages vanish (offers, READY, START, DONE, ABORT): the
    job either gives the right tokens or fails with a timeout's reason, in bounded
    simulated time, and every rank is let go of in the end."""
    links = Links(control=LinkModel(loss=0.2))
    sim, ids = pool(3, seed=seed, links=links, ready_timeout=30.0, done_timeout=5.0)
    session = sim.coordinate(ids[0], PROMPT, max_tokens=10)
    assert sim.run_until(lambda: outcome(sim, ids[0], session) is not None, 60.0) is not None
    done = outcome(sim, ids[0], session)
    if isinstance(done, ev.JobSucceeded):
        assert done.result.token_ids == [token_for(tuple(PROMPT), k) for k in range(10)]
    else:
        assert isinstance(done, ev.JobEnded)
        assert done.error.reason in (Reason.LOAD_TIMEOUT, Reason.MEMBER_LOST), done.error
    assert sim.run_until(lambda: idle(sim), 40.0) is not None


def test_garbage_from_a_member_mid_job_is_dropped_and_the_job_completes() -> None:
    sim, ids = pool(3, seed=11)
    coordinator, noisy = ids[0], ids[1]
    session = sim.coordinate(coordinator, PROMPT, max_tokens=12)
    assert sim.run_until(lambda: bool(sim.agents[coordinator].tokens.get(session)), 10.0)
    for i in range(50):
        junk = sim.rng.randbytes(sim.rng.randrange(1, 60))
        for target in (coordinator, ids[2]):
            sim.agents[target].jobs.receive_message(
                noisy, junk if i % 2 else b"MJ\x01" + junk, sim.now
            )
            sim.flush(target)
    assert sim.run_until(lambda: outcome(sim, coordinator, session) is not None, 30.0) is not None
    done = outcome(sim, coordinator, session)
    assert isinstance(done, ev.JobSucceeded)
    assert done.result.token_ids == [token_for(tuple(PROMPT), k) for k in range(12)]
    assert all(sum(sim.agents[n].jobs.drops.values()) == 50 for n in (coordinator, ids[2]))
