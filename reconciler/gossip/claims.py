"""What a gossip claim must look like before the member table looks at it.

A member with a valid certificate can still lie, so every broadcast and push-pull
record is checked here first (pure functions, no state):

- node IDs have the ``node-<16 hex>`` form of ``certs.identity.node_id_for``;
- incarnations stay below ``MAX_INCARNATION``, well under the u32 limit, so a
  refutation (``incarnation + 1``) can always be encoded;
- a node's advertised capacity is plausible: bounded memory, cores, name and address;
- a node's measurements (``Measures``) are about itself and its own links only, within
  plausible bounds (speed, free memory, round trip, throughput, number of links).

Who may say what (attribution) is decided in ``attribution.py``.
"""

from __future__ import annotations

import re

from reconciler.gossip.messages import (
    Alive,
    Broadcast,
    BulkPing,
    Dead,
    Leave,
    Measures,
    MemberRecord,
    NodeMeta,
    Revoke,
    RingReport,
    Suspect,
)

NODE_ID = re.compile(r"node-[0-9a-f]{16}\Z")
MAX_INCARNATION = 0xFFFF_0000
"""Claims above this are refused: far enough below 2**32 for every refutation."""
MAX_EPOCH = 1 << 62
"""Ring epochs above this are refused (the ring may step past any epoch it hears)."""
MAX_SELF_JUMP = 1 << 31
"""A claim about ourselves above this is refused instead of being outbid."""
MAX_MEMORY_BYTES = 1 << 42  # 4 TiB: more than any LAN device offers
MAX_CORES = 4096
MAX_NAME = 64
MAX_ADDRESS = 270  # a bracketed IPv6 literal with zone, or a DNS name, plus a port
MAX_REVOCATION_BYTES = 256 * 1024
MAX_SPEED_BYTES_PER_S = 1 << 42  # 4 TB/s of weights: far above any CPU or GPU memory
MAX_LINK_BYTES_PER_S = 1 << 37  # 137 GB/s: above any LAN (and loopback TLS)
MAX_RTT_US = 60_000_000  # a minute: a round trip above that is not a link
MAX_LINKS = 256  # a node measures at most its pool's other members
MAX_BULK_BYTES = 128 * 1024  # twice the bulk probe this code sends


def is_node_id(value: str) -> bool:
    """True for IDs of the form a certificate carries: ``node-`` and 16 hex digits."""
    return NODE_ID.match(value) is not None


def meta_problem(meta: NodeMeta) -> str | None:
    """Why a node's self-description is implausible, or None."""
    if meta.memory_bytes > MAX_MEMORY_BYTES:
        return "implausible memory size"
    if meta.cores > MAX_CORES:
        return "implausible core count"
    if len(meta.name) > MAX_NAME or not meta.name.isprintable():
        return "bad device name"
    if len(meta.address) > MAX_ADDRESS or not _address_ok(meta.address):
        return "bad address"
    return None


def _address_ok(address: str) -> bool:
    if not address:
        return True
    host, sep, port = address.rpartition(":")
    return bool(sep and host and port.isdigit() and 0 < int(port) < 65536) and host.isprintable()


def _incarnation_problem(incarnation: int) -> str | None:
    return "incarnation near the 32-bit limit" if incarnation > MAX_INCARNATION else None


def broadcast_problem(b: Broadcast) -> str | None:
    """Why a broadcast is refused before it reaches the member table, or None."""
    match b:
        case Alive(node_id, inc, meta):
            return _id_problem(node_id) or _incarnation_problem(inc) or meta_problem(meta)
        case Suspect(node_id, inc, by) | Dead(node_id, inc, by):
            return _id_problem(node_id) or _id_problem(by) or _incarnation_problem(inc)
        case Leave(node_id, inc):
            return _id_problem(node_id) or _incarnation_problem(inc)
        case RingReport(node_id, epoch):
            return _id_problem(node_id) or ("ring epoch too large" if epoch > MAX_EPOCH else None)
        case Revoke(entry):
            return "revocation too large" if len(entry) > MAX_REVOCATION_BYTES else None
    return "unknown broadcast"


def record_problem(r: MemberRecord) -> str | None:
    """Why a push-pull record is refused, or None."""
    return _id_problem(r.node_id) or _incarnation_problem(r.incarnation) or meta_problem(r.meta)


def _id_problem(node_id: str) -> str | None:
    return None if is_node_id(node_id) else "malformed node id"


def measures_problem(m: Measures, sender: str) -> str | None:
    """Why a node's statement of its own measurements is refused, or None."""
    if m.speed_bytes_per_s > MAX_SPEED_BYTES_PER_S:
        return "implausible kernel speed"
    if m.free_memory > MAX_MEMORY_BYTES:
        return "implausible free memory"
    if len(m.links) > MAX_LINKS:
        return "too many links measured"
    if len({link.peer for link in m.links}) != len(m.links):
        return "a link measured twice"
    for link in m.links:
        if not is_node_id(link.peer) or link.peer == sender:
            return "link to a malformed node id or to itself"
        if link.rtt_us > MAX_RTT_US:
            return "implausible round trip"
        if link.bytes_per_s > MAX_LINK_BYTES_PER_S:
            return "implausible link throughput"
    return None


def bulk_problem(b: BulkPing) -> str | None:
    """Why a bulk probe is refused (not answered), or None."""
    return "bulk probe too large" if len(b.padding) > MAX_BULK_BYTES else None
