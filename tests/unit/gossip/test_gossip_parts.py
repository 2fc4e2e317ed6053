"""Broadcast queue and Lifeguard suspicion timer."""

from __future__ import annotations

from reconciler.gossip.broadcasts import BroadcastQueue, retransmit_limit
from reconciler.gossip.messages import Alive, NodeMeta, Revoke, RingReport, Suspect
from reconciler.gossip.suspicion import Suspicion, min_suspicion_timeout

META = NodeMeta("n", "h:1")


def test_newer_broadcast_about_same_member_replaces_older() -> None:
    q = BroadcastQueue()
    q.push(Alive("a", 1, META))
    q.push(Suspect("a", 1, "b"))
    q.push(RingReport("a", 1, "ab" * 32))
    assert len(q) == 2
    assert set(q.take(10_000, 5)) == {Suspect("a", 1, "b"), RingReport("a", 1, "ab" * 32)}


def test_broadcasts_stop_after_the_retransmit_limit() -> None:
    q = BroadcastQueue()
    q.push(Revoke(b"x"))
    sent = [q.take(10_000, 3) for _ in range(4)]
    assert sent == [(Revoke(b"x"),)] * 3 + [()]


def test_byte_budget_and_least_sent_first() -> None:
    q = BroadcastQueue()
    q.push(Revoke(b"a" * 100))
    assert q.take(50, 5) == ()
    q.push(Revoke(b"b"))
    assert q.take(200, 5) == (Revoke(b"b"), Revoke(b"a" * 100))
    q.push(Revoke(b"c"))
    assert q.take(200, 5)[0] == Revoke(b"c")


def test_retransmit_limit_grows_with_log_n() -> None:
    assert retransmit_limit(4, 2) == 4
    assert retransmit_limit(4, 64) == 8


def test_suspicion_timeout_scales_with_log_n() -> None:
    assert min_suspicion_timeout(3, 2, 0.4) == 3 * 0.4
    assert min_suspicion_timeout(3, 100, 0.4) == 3 * 2 * 0.4


def test_confirmations_shrink_the_timeout_to_the_minimum() -> None:
    s = Suspicion(start=10.0, min_timeout=1.0, max_timeout=4.0, expected=2, by="a")
    assert s.deadline == 14.0
    assert s.confirm("b") and not s.confirm("b")
    assert 11.0 < s.deadline < 14.0
    s.confirm("c")
    assert s.deadline == 11.0


def test_no_expected_confirmations_means_minimum_timeout() -> None:
    assert Suspicion(0.0, 1.5, 6.0, 0, "a").deadline == 1.5
