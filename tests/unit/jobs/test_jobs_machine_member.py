"""JobMachine, a member's side: offers, its rank's reports, orders, limits, bad frames."""

from __future__ import annotations

import random

import pytest

from reconciler.jobs import machineevents as ev
from reconciler.jobs import messages as m
from reconciler.jobs.errors import Reason
from reconciler.jobs.machineoffers import BUSY, LOAD_FAILED_TO_PEER
from tests.unit.jobs.conftest import make_ring
from tests.unit.jobs.machinekit import RING, SESSION, Kit, offer, stats


def offered(kit: Kit, session: int = SESSION) -> Kit:
    return kit.receive("a", offer(session=session))


def test_an_offer_loads_and_reports_to_the_coordinator() -> None:
    kit = offered(Kit("b"))
    assert kit.take() == ([], [ev.LoadSlice(offer(), "a")])
    kit.machine.slice_progress(SESSION, 0.4, kit.now)
    kit.machine.slice_loaded(SESSION, 9.0, 10, kit.now)
    sent, _ = kit.take()
    assert [msg for _, msg, _ in sent] == [
        m.LoadProgress("job", SESSION, "b", 0.4), m.JobReady("job", SESSION, "b", 9.0, 10),
    ]  # fmt: skip
    kit.receive("a", m.JobStart("job", SESSION))
    assert kit.take() == ([], [ev.StartSlice(SESSION)])
    kit.machine.slice_token(SESSION, object(), kit.now)  # type: ignore[arg-type]
    kit.machine.slice_done(SESSION, stats("b"), kit.now)
    sent, events = kit.take()
    assert [msg for _, msg, _ in sent] == [m.JobDone("job", SESSION, stats("b"))]
    assert events == [] and not kit.machine.ranks  # a member streams no tokens


def test_a_member_never_waits_for_start_forever() -> None:
    kit = offered(Kit("b"))
    kit.machine.slice_loaded(SESSION, 9.0, 10, kit.now)
    kit.take()
    assert kit.machine.get_timer() == kit.now + 35.0  # ready_timeout + done_timeout
    kit.advance(35.0)
    assert kit.take() == ([], [ev.StopSlice(SESSION, "no JOB_START from the coordinator")])
    assert not kit.machine.ranks


def test_abort_from_the_coordinator_stops_the_rank_and_others_cannot() -> None:
    kit = offered(Kit("b"))
    kit.take()
    kit.receive("c", m.JobAbort("job", SESSION, Reason.ABORTED, "by c"))
    kit.receive("a", m.JobAbort("other-job", SESSION, Reason.ABORTED, "wrong job"))
    assert kit.take() == ([], []) and SESSION in kit.machine.ranks
    kit.receive("a", m.JobAbort("job", SESSION, Reason.ABORTED, "bye"))
    assert kit.take() == ([], [ev.StopSlice(SESSION, "Aborted: bye")])


def test_generation_failure_is_reported_as_abort() -> None:
    kit = offered(Kit("b"))
    kit.machine.slice_loaded(SESSION, 9.0, 10, kit.now)
    kit.receive("a", m.JobStart("job", SESSION))
    kit.take()
    kit.machine.slice_aborted(SESSION, Reason.MEMBER_LOST, "no contribution from c", kit.now)
    sent, _ = kit.take()
    assert [msg for _, msg, _ in sent] == [
        m.JobAbort("job", SESSION, Reason.MEMBER_LOST, "no contribution from c")
    ]


@pytest.mark.parametrize(
    ("reason", "message", "told"),
    [
        (Reason.LOAD_FAILED, "FileNotFoundError: /home/x/secret.gguf", LOAD_FAILED_TO_PEER),
        (Reason.MODEL_NOT_FOUND, "the model is not available", "the model is not available"),
    ],
)
def test_load_failures_tell_a_peer_nothing_of_files(reason: str, message: str, told: str) -> None:
    kit = offered(Kit("b"))
    kit.take()
    kit.machine.slice_failed(SESSION, reason, message, kit.now)
    sent, _ = kit.take()
    assert [msg for _, msg, _ in sent] == [m.JobLoadFailed("job", SESSION, "b", reason, told)]
    assert not kit.machine.ranks


def test_a_lost_member_stops_the_ranks_it_is_in() -> None:
    kit = offered(Kit("b"))
    kit.take()
    kit.machine.member_lost("z", kit.now)  # not in the job
    kit.machine.member_lost("b", kit.now)  # ourselves
    assert kit.take() == ([], [])
    kit.machine.member_lost("c", kit.now)
    assert kit.take() == ([], [ev.StopSlice(SESSION, "MemberLost: member c was lost")])


def test_runs_per_coordinator_are_bounded() -> None:
    kit = Kit("b", max_runs_per_peer=2, max_runs=3)
    for session in (1, 2, 3):
        offered(kit, session)
    sent, events = kit.take()
    assert [type(e).__name__ for e in events] == ["LoadSlice", "LoadSlice", "FrameDropped"]
    assert [msg for _, msg, _ in sent] == [m.JobLoadFailed("job", 3, "b", Reason.LOAD_FAILED, BUSY)]
    assert kit.machine.drops == {"too-many-runs": 1}


def test_an_offer_for_another_ring_is_refused() -> None:
    other = make_ring({"a": (0, 100), "b": (100, 8192)})
    kit = offered(Kit("b", ring_view=lambda: other))
    sent, events = kit.take()
    ((_, refusal, _),) = sent
    assert isinstance(refusal, m.JobLoadFailed) and refusal.reason == Reason.RING_MISMATCH
    assert "my ring is" in refusal.message and events == [] and not kit.machine.ranks


def test_an_offer_matching_our_ring_is_taken() -> None:
    kit = offered(Kit("b", ring_view=lambda: RING))
    assert kit.take() == ([], [ev.LoadSlice(offer(), "a")])


def test_unexpected_offers_and_orders_are_dropped() -> None:
    kit = offered(Kit("b"))
    offered(kit)  # the same session again
    kit.receive("c", offer(session=SESSION + 1))  # the same job from someone else
    kit.receive("z", offer(session=SESSION + 2))  # the coordinator is not in the job
    kit.receive("a", offer(make_ring({"a": (0, 8192)}), session=SESSION + 3))  # nor are we
    kit.receive("a", m.JobStart("job", SESSION + 9))
    kit.receive("a", m.JobReady("job", SESSION, "a", 1.0, 1))  # we coordinate nothing
    assert dict(kit.machine.drops) == {
        "duplicate-offer": 1, "job-of-another-coordinator": 1, "not-a-participant": 2,
        "no-such-run": 1, "no-such-coordination": 1,
    }  # fmt: skip
    assert list(kit.machine.ranks) == [SESSION] and kit.sent == []


def test_hostile_frames_are_dropped_and_counted_never_raised() -> None:
    rng = random.Random(13)
    valid = [m.encode(offer()), m.encode(m.JobDone("job", SESSION, stats("a")))]
    kit = Kit("b")
    bad = 0
    for _ in range(300):
        frame = bytearray(rng.choice(valid))
        for _ in range(rng.randrange(1, 4)):
            frame[rng.randrange(len(frame))] = rng.randrange(256)
        kit.receive("a", bytes(frame[: rng.randrange(len(frame) + 1)]))
    for _ in range(100):
        kit.receive("a", rng.randbytes(rng.randrange(80)))
        bad += 1
    assert sum(kit.machine.drops.values()) + len(kit.of(ev.LoadSlice)) == 400
    assert kit.machine.drops["bad-control"] >= bad
    assert len(kit.of(ev.FrameDropped)) == sum(kit.machine.drops.values())
