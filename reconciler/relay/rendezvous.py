"""The relay as a rendezvous, sans-IO: members register their peer-link addresses and
get the other registered members of their pool back (for networks where multicast
beacons do not get through).

Wire bodies (``text`` = u16 length + UTF-8)::

    REGISTER  text name  u8 n  n x text host:port  u64 memory  u16 cores
    PEERS     u16 count  count x (text node_id  <REGISTER's fields>)

Everything is bounded: names, addresses per member, and the entries in one answer.
"""

from __future__ import annotations

from reconciler.codec import GARBAGE, DecodeError, Reader, Writer
from reconciler.relay.messages import FrameType, PeerEntry, Peers, Register

MAX_ADDRESSES = 8
MAX_NAME = 64
MAX_ADDRESS = 64
MAX_ENTRIES = 200  # ~ 200 * 300 bytes: one PEERS frame stays under the payload limit


def _fields(w: Writer, name: str, addresses: tuple[str, ...], memory: int, cores: int) -> Writer:
    w.text16(name[:MAX_NAME]).u8(min(len(addresses), MAX_ADDRESSES))
    for address in addresses[:MAX_ADDRESSES]:
        w.text16(address[:MAX_ADDRESS])
    return w.u64(max(0, min(memory, 2**64 - 1))).u16(max(0, min(cores, 0xFFFF)))


def encode_body(m: Register | Peers) -> tuple[FrameType, bytes]:
    w = Writer()
    if isinstance(m, Register):
        return FrameType.REGISTER, _fields(
            w, m.name, m.addresses, m.memory_bytes, m.cores
        ).getvalue()
    entries = m.entries[:MAX_ENTRIES]
    w.u16(len(entries))
    for e in entries:
        _fields(w.text16(e.node_id[:MAX_NAME]), e.name, e.addresses, e.memory_bytes, e.cores)
    return FrameType.PEERS, w.getvalue()


def _bounded(r: Reader, limit: int, what: str) -> str:
    value = r.text16()
    if len(value) > limit:
        raise DecodeError(GARBAGE, f"{what} longer than {limit}")
    return value


def _read_fields(r: Reader) -> tuple[str, tuple[str, ...], int, int]:
    name = _bounded(r, MAX_NAME, "name")
    count = r.count8(MAX_ADDRESSES, "addresses")
    addresses = tuple(_address(_bounded(r, MAX_ADDRESS, "address")) for _ in range(count))
    return name, addresses, r.u64(), r.u16()


def _address(text: str) -> str:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise DecodeError(GARBAGE, f"address {text!r} is not host:port")
    return text


def decode_fields(kind: int, r: Reader) -> Register | Peers:
    if kind == FrameType.REGISTER:
        return Register(*_read_fields(r))
    entries = []
    for _ in range(r.count16(MAX_ENTRIES, "entries")):
        node_id = _bounded(r, MAX_NAME, "node ID")
        entries.append(PeerEntry(node_id, *_read_fields(r)))
    return Peers(tuple(entries))
