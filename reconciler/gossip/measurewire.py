"""Gossip bodies that carry measurements (wire v1, optional: body types 6 to 8).

An older node does not know these body types and drops such a message whole ("unknown
message type"); so they never carry piggybacked broadcasts, and nothing else is lost.
Figures are integers; 0 means "not measured"::

    MEASURES  := u64 speed_bytes_per_s  u64 free_memory  u16 n  link*n   (type 6)
    link      := str peer  u32 rtt_us  u64 bytes_per_s
    BULK_PING := u32 seq  blob padding                                    (type 7)
    BULK_ACK  := u32 seq                                                  (type 8)

``MEASURES`` is always about its sender (the authenticated peer): its own kernel speed,
its free memory and its own links. ``BULK_PING`` is a rare bounded probe (at most 64 KiB
per peer per minute, ``linkstats.py``) answered at once with ``BULK_ACK``.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.codec import Reader, Writer

MAX_LINKS = 4096  # decoder bound; claims.py holds the plausibility bound


@dataclass(frozen=True, slots=True)
class LinkFigure:
    """The sender's smoothed figures for its link to ``peer`` (0 = not measured)."""

    peer: str
    rtt_us: int
    bytes_per_s: int


@dataclass(frozen=True, slots=True)
class Measures:
    """What the sender states about itself (0 = not measured)."""

    speed_bytes_per_s: int
    free_memory: int
    links: tuple[LinkFigure, ...] = ()


@dataclass(frozen=True, slots=True)
class BulkPing:
    seq: int
    padding: bytes


@dataclass(frozen=True, slots=True)
class BulkAck:
    seq: int


MeasureBody = Measures | BulkPing | BulkAck


def write_measures(w: Writer, m: Measures) -> None:
    w.u64(m.speed_bytes_per_s)
    w.u64(m.free_memory)
    w.u16(len(m.links))
    for link in m.links:
        w.text16(link.peer)
        w.u32(link.rtt_us)
        w.u64(link.bytes_per_s)


def read_measures(r: Reader) -> Measures:
    speed, free = r.u64(), r.u64()
    links = tuple(
        LinkFigure(r.text16(empty=False), r.u32(), r.u64())
        for _ in range(r.count16(MAX_LINKS, "links"))
    )
    return Measures(speed, free, links)


def write_bulk_ping(w: Writer, b: BulkPing) -> None:
    w.u32(b.seq)
    w.blob32(b.padding)


def read_bulk_ping(r: Reader) -> BulkPing:
    return BulkPing(r.u32(), r.blob32())
