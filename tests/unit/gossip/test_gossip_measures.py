"""Round trips, throughput and own statements in the gossip machine, by hand clock."""

from __future__ import annotations

import pytest

from reconciler.gossip.claims import MAX_LINK_BYTES_PER_S, MAX_MEMORY_BYTES, measures_problem
from reconciler.gossip.events import MessageDropped
from reconciler.gossip.linkstats import BULK_BYTES, BULK_INTERVAL, Measuring
from reconciler.gossip.machine import GossipProtocol
from reconciler.gossip.measurewire import BulkAck, BulkPing, LinkFigure, Measures
from reconciler.gossip.messages import (
    Ack,
    GossipDecodeError,
    Message,
    Ping,
    decode,
    encode,
)
from tests.unit.gossip.test_gossip_machine import A, B, C, drain, joined_pair

Sent = list[tuple[str, object]]


def measuring() -> tuple[Measuring, Sent]:
    sent: Sent = []
    return Measuring(A, lambda to, body: sent.append((to, body))), sent


def test_round_trip_is_smoothed_with_tcp_gain() -> None:
    m, _ = measuring()
    m.on_rtt(B, 0.010)
    assert m.links[B].rtt_s == pytest.approx(0.010)
    m.on_rtt(B, 0.002)
    assert m.links[B].rtt_s == pytest.approx(0.010 + (0.002 - 0.010) / 8)


def test_bulk_probe_waits_for_a_round_trip_then_goes_once_a_minute() -> None:
    m, sent = measuring()
    m.tick(0.0, [B])
    assert sent == []  # nothing to state, no round trip known yet
    m.on_rtt(B, 0.001)
    m.tick(1.0, [B])
    bulks = [body for _, body in sent if isinstance(body, BulkPing)]
    assert len(bulks) == 1 and len(bulks[0].padding) == BULK_BYTES
    m.on_bulk_ack(B, bulks[0].seq, 1.0 + 0.001 + 0.004)  # 64 KiB took 4 ms more
    assert m.links[B].bytes_per_s == pytest.approx(BULK_BYTES / 0.004)
    sent.clear()
    m.tick(1.0 + BULK_INTERVAL - 1, [B])
    assert not any(isinstance(body, BulkPing) for _, body in sent)
    m.tick(1.0 + BULK_INTERVAL, [B])
    assert any(isinstance(body, BulkPing) for _, body in sent)


def test_bulk_ack_from_another_peer_or_unknown_seq_is_ignored() -> None:
    m, sent = measuring()
    m.on_rtt(B, 0.001)
    m.tick(1.0, [B, C])
    [seq] = [body.seq for _, body in sent if isinstance(body, BulkPing)]
    m.on_bulk_ack(C, seq, 1.01)
    m.on_bulk_ack(B, seq + 1, 1.01)
    assert m.links[B].bytes_per_s is None


def test_statement_is_sent_to_each_member_every_interval_and_at_once_on_speed() -> None:
    m, sent = measuring()
    m.set_local(None, 4 << 30)
    m.tick(0.0, [B, C])
    statements = [(to, body) for to, body in sent if isinstance(body, Measures)]
    assert statements == [(B, Measures(0, 4 << 30)), (C, Measures(0, 4 << 30))]
    sent.clear()
    m.tick(1.0, [B, C])
    assert sent == []
    m.set_local(2e9, None)
    m.tick(1.5, [B, C])
    assert [body for _, body in sent] == [Measures(2_000_000_000, 4 << 30)] * 2


def test_probe_ack_gives_the_round_trip_of_the_direct_path() -> None:
    nodes = joined_pair()
    a = nodes[A]
    a.messages_to_send()
    now = 0.0
    for _ in range(20):  # timer rounds until a ping to B goes out
        now = a.get_timer() or now
        a.handle_timer(now)
        pings = [decode(d) for to, d in a.messages_to_send() if to == B]
        found = [msg.body for msg in pings if isinstance(msg.body, Ping)]
        if found:
            a.receive_message(B, encode(Message(Ack(found[0].seq))), now + 0.003)
            break
    assert a.link_stats()[B].rtt_s == pytest.approx(0.003)


def test_own_statement_and_heard_statement_are_held_per_member() -> None:
    nodes = joined_pair()
    nodes[B].set_local_measures(3e9, 2 << 30)
    nodes[A].receive_message(B, encode(Message(Measures(3_000_000_000, 2 << 30))), 1.0)
    reports = nodes[A].measure_reports(1.0)
    assert reports[B].speed_bytes_per_s == 3e9 and reports[B].free_memory == 2 << 30
    assert reports[A].speed_bytes_per_s is None  # A has not measured itself yet


def test_measurement_bodies_never_carry_broadcasts() -> None:
    """Older nodes drop unknown bodies whole: broadcasts must ride on other messages."""
    a = joined_pair()[A]
    a.messages_to_send()
    a.add_revocations([b"revoke:" + C.encode()])  # queues a Revoke broadcast
    a.receive_message(B, encode(Message(BulkPing(5, bytes(100)))), 1.0)
    a.receive_message(B, encode(Message(Ping(6, A))), 1.0)
    bodies = {type(m.body): m for m in (decode(d) for _, d in a.messages_to_send())}
    assert bodies[BulkAck].body == BulkAck(5) and bodies[BulkAck].broadcasts == ()
    assert bodies[Ack].broadcasts != ()


FORGED = [
    (Measures(1 << 50, 0), "implausible kernel speed"),
    (Measures(0, MAX_MEMORY_BYTES + 1), "implausible free memory"),
    (Measures(0, 0, (LinkFigure(B, 10, 10),)), "link to a malformed node id or to itself"),
    (Measures(0, 0, (LinkFigure("node-x", 10, 10),)), "link to a malformed node id or to itself"),
    (Measures(0, 0, (LinkFigure(C, 61_000_000, 10),)), "implausible round trip"),
    (Measures(0, 0, (LinkFigure(C, 10, MAX_LINK_BYTES_PER_S + 1),)), "implausible link throughput"),
    (Measures(0, 0, (LinkFigure(C, 1, 1), LinkFigure(C, 2, 2))), "a link measured twice"),
]


@pytest.mark.parametrize(("forged", "reason"), FORGED)
def test_forged_statements_are_dropped_and_counted(forged: Measures, reason: str) -> None:
    assert measures_problem(forged, B) == reason
    nodes = joined_pair()
    a: GossipProtocol = nodes[A]
    drain(a)
    a.receive_message(B, encode(Message(forged)), 1.0)
    dropped = [e.reason for e in drain(a) if isinstance(e, MessageDropped)]
    assert dropped == [reason]
    assert B not in a.measure_reports(1.0)


def test_statement_from_a_non_member_and_oversized_bulk_are_dropped() -> None:
    nodes = joined_pair()
    a = nodes[A]
    drain(a)
    a.receive_message(C, encode(Message(Measures(1, 1))), 1.0)
    a.receive_message(B, encode(Message(BulkPing(1, bytes(200_000)))), 1.0)
    reasons = [e.reason for e in drain(a) if isinstance(e, MessageDropped)]
    assert reasons == ["measurement from a non-member", "bulk probe too large"]
    assert C not in a.measure_reports(1.0)
    assert not any(isinstance(decode(d).body, BulkAck) for _, d in a.messages_to_send())


def test_measurement_bodies_round_trip_and_truncation_is_a_decode_error() -> None:
    body = Measures(123, 456, (LinkFigure(B, 789, 1011), LinkFigure(C, 0, 0)))
    for b in (body, BulkPing(7, b"xyz"), BulkAck(9)):
        data = encode(Message(b))
        assert decode(data).body == b
        with pytest.raises(GossipDecodeError):
            decode(data[:-1])
