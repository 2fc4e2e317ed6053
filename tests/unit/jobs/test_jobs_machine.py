"""JobMachine, the coordinator's side: every transition, on a clock moved by hand."""

from __future__ import annotations

import pytest

from reconciler.jobs import machineevents as ev
from reconciler.jobs import messages as m
from reconciler.jobs.errors import Reason
from tests.unit.jobs.machinekit import SESSION, Kit, Tok, offer, stats


def loaded(kit: Kit) -> Kit:
    """``a`` coordinates a three-member job; everyone has loaded, START went out."""
    kit.machine.coordinate(offer(), kit.now)
    kit.machine.slice_loaded(SESSION, 12.0, 1000, kit.now + 1)
    kit.now += 2
    kit.receive("b", m.JobReady("job", SESSION, "b", 9.0, 10))
    kit.receive("c", m.JobReady("job", SESSION, "c", 9.0, 10))
    return kit


def test_coordinate_offers_to_members_and_loads_own_rank() -> None:
    kit = Kit()
    kit.machine.coordinate(offer(), kit.now)
    sent, events = kit.take()
    assert [(n, type(msg).__name__, o) for n, msg, o in sent] == [
        ("b", "JobOffer", True), ("c", "JobOffer", True),
    ]  # fmt: skip
    assert events == [ev.LoadSlice(offer(), "a")]
    assert kit.machine.get_timer() == kit.now + 30.0


def test_the_last_ready_starts_every_rank() -> None:
    kit = Kit()
    kit.machine.coordinate(offer(), kit.now)
    kit.receive("b", m.LoadProgress("job", SESSION, "b", 0.5))
    kit.receive("b", m.JobReady("job", SESSION, "b", 9.0, 10))
    kit.machine.slice_loaded(SESSION, 12.0, 1000, kit.now)
    kit.take()
    kit.receive("c", m.JobReady("job", SESSION, "c", 9.0, 10))
    sent, events = kit.take()
    assert [(n, type(msg).__name__) for n, msg, _ in sent] == [("b", "JobStart"), ("c", "JobStart")]
    assert events == [ev.Progress(SESSION, "c", 1.0), ev.StartSlice(SESSION)]
    assert kit.machine.get_timer() is None  # running: the collectives time the ranks out


def test_progress_is_reported_and_ready_counts_once() -> None:
    kit = Kit()
    kit.machine.coordinate(offer(), kit.now)
    kit.take()
    kit.receive("b", m.LoadProgress("job", SESSION, "b", 0.5))
    kit.receive("b", m.JobReady("job", SESSION, "b", 9.0, 10))
    kit.receive("b", m.JobReady("job", SESSION, "b", 9.0, 10))
    assert kit.of(ev.Progress) == [ev.Progress(SESSION, "b", 0.5), ev.Progress(SESSION, "b", 1.0)]
    assert kit.machine.coordinations[SESSION].ready_nodes == {"b"}


def test_tokens_then_every_done_give_the_result() -> None:
    kit = loaded(Kit())
    kit.take()
    kit.now += 1.0
    for i, finish in enumerate([None, None, "length"]):
        kit.machine.slice_token(SESSION, Tok(10 + i, finish_reason=finish), kit.now)
    kit.machine.slice_done(SESSION, stats("a"), kit.now)
    kit.receive("b", m.JobDone("job", SESSION, stats("b")))
    assert kit.of(ev.JobSucceeded) == []
    assert kit.machine.get_timer() == kit.now + 5.0  # closing: waiting for c's stats
    kit.receive("c", m.JobDone("job", SESSION, stats("c")))
    (done,) = kit.of(ev.JobSucceeded)
    result = done.result
    assert result.token_ids == [10, 11, 12] and result.finish_reason == "length"
    assert result.load_ms == pytest.approx(2000.0)  # coordinate at 100, last READY at 102
    assert result.time_to_first_token_ms == pytest.approx(1000.0)
    assert [s.node_id for s in result.members] == ["a", "b", "c"] and result.missing_stats == []
    assert len(kit.of(ev.TokenOut)) == 3 and done.note == ""
    assert not kit.machine.coordinations and not kit.machine.ranks


def test_a_missing_done_ends_the_wait_with_what_arrived() -> None:
    kit = loaded(Kit())
    kit.machine.slice_done(SESSION, stats("a"), kit.now)
    kit.receive("b", m.JobDone("job", SESSION, stats("b")))
    kit.advance(4.9)
    assert kit.of(ev.JobSucceeded) == []
    kit.advance(0.2)
    (done,) = kit.of(ev.JobSucceeded)
    assert done.result.missing_stats == ["c"] and "no JOB_DONE from c" in done.note
    assert ("c", "JobAbort") not in kit.sent_types()


def test_ready_timeout_names_who_is_missing_and_aborts_everyone() -> None:
    kit = Kit()
    kit.machine.coordinate(offer(), kit.now)
    kit.machine.slice_loaded(SESSION, 12.0, 1000, kit.now)
    kit.receive("b", m.JobReady("job", SESSION, "b", 9.0, 10))
    kit.take()
    kit.advance(29.9)
    assert kit.take() == ([], [])
    kit.advance(0.2)
    (ended,) = kit.of(ev.JobEnded)
    assert ended.error.reason == Reason.LOAD_TIMEOUT and ended.error.message.endswith(": c")
    assert kit.sent_types() == [("b", "JobAbort"), ("c", "JobAbort")]
    assert kit.of(ev.StopSlice) == [
        ev.StopSlice(SESSION, f"{Reason.LOAD_TIMEOUT}: not ready in time: c")
    ]
    assert kit.machine.get_timer() is None


@pytest.mark.parametrize(
    "report",
    [
        m.JobLoadFailed("job", SESSION, "b", Reason.MODEL_NOT_FOUND, "no model"),
        m.JobAbort("job", SESSION, Reason.GENERATION_FAILED, "no model"),
    ],
    ids=["load-failed", "abort"],
)
def test_a_member_failure_fails_the_job_with_its_reason(
    report: m.JobLoadFailed | m.JobAbort,
) -> None:
    kit = Kit()
    kit.machine.coordinate(offer(), kit.now)
    kit.take()
    kit.receive("b", report)
    (ended,) = kit.of(ev.JobEnded)
    assert ended.error.reason == report.reason
    assert ended.error.message == "b: no model"
    assert kit.sent_types() == [("b", "JobAbort"), ("c", "JobAbort")]


def test_member_lost_while_running_fails_the_job_once() -> None:
    kit = loaded(Kit())
    kit.take()
    kit.machine.member_lost("c", kit.now)
    kit.machine.member_lost("b", kit.now)
    kit.drain()
    (ended,) = kit.of(ev.JobEnded)
    assert (ended.error.reason, ended.error.message) == (Reason.MEMBER_LOST, "member c was lost")
    assert kit.of(ev.StopSlice) == [ev.StopSlice(SESSION, "MemberLost: member c was lost")]
    assert kit.sent_types() == [("b", "JobAbort"), ("c", "JobAbort")]


def test_member_lost_after_the_last_token_still_reports_the_result() -> None:
    kit = loaded(Kit())
    kit.machine.slice_token(SESSION, Tok(5), kit.now)
    kit.machine.slice_done(SESSION, stats("a"), kit.now)
    kit.machine.member_lost("c", kit.now)
    (done,) = kit.drain().of(ev.JobSucceeded)
    assert done.result.token_ids == [5] and "member c was lost" in done.note


def test_a_cancelled_caller_aborts_even_while_closing() -> None:
    kit = loaded(Kit())
    kit.machine.slice_done(SESSION, stats("a"), kit.now)
    kit.take()
    kit.machine.abort(SESSION, Reason.ABORTED, "CancelledError", kit.now)
    sent, events = kit.take()
    assert [type(e).__name__ for e in events] == ["JobEnded"]
    assert [(n, type(msg).__name__) for n, msg, _ in sent] == [("b", "JobAbort"), ("c", "JobAbort")]


def test_an_offer_that_cannot_be_sent_fails_the_job() -> None:
    kit = Kit()
    kit.machine.coordinate(offer(), kit.now)
    kit.take()
    kit.machine.unreachable(SESSION, "c", kit.now)
    (ended,) = kit.drain().of(ev.JobEnded)
    assert ended.error.reason == Reason.MEMBER_UNREACHABLE and "to c" in ended.error.message


def test_own_load_failure_keeps_its_detail_locally() -> None:
    kit = Kit()
    kit.machine.coordinate(offer(), kit.now)
    kit.machine.slice_failed(SESSION, Reason.LOAD_FAILED, "MemoryError: 3 GB short", kit.now)
    (ended,) = kit.drain().of(ev.JobEnded)
    assert ended.error.message == "a: MemoryError: 3 GB short"


def test_close_fails_running_jobs_and_stops_ranks() -> None:
    kit = loaded(Kit())
    kit.take()
    kit.machine.close(kit.now)
    sent, events = kit.take()
    assert [type(e).__name__ for e in events] == ["StopSlice", "JobEnded"]
    assert [(n, type(msg).__name__) for n, msg, _ in sent] == [("b", "JobAbort"), ("c", "JobAbort")]
    assert not kit.machine.coordinations and not kit.machine.ranks


def test_a_session_cannot_be_coordinated_twice() -> None:
    kit = Kit()
    kit.machine.coordinate(offer(), kit.now)
    with pytest.raises(ValueError, match="in use"):
        kit.machine.coordinate(offer(), kit.now)
    with pytest.raises(ValueError, match="not a participant"):
        Kit("z").machine.coordinate(offer(), kit.now)
