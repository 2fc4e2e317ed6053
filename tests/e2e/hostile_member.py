"""A member whose valid certificate is in hostile hands. It dials honest agents over
their real TLS peer links (the project's own driver) and sends the gossip attacks of
the security review, then exits. Run inside the device's namespace (or on loopback).

    python hostile_member.py MESHNET_HOME POOL_NAME TARGETS_JSON

TARGETS_JSON is ``[{"nodeId": ..., "address": "host:port"}, ...]``: the first target
is the victim of the suspicion and capacity attacks, the second of the forged leave.
Ghost members point at 127.0.0.1:9, inside the namespace. Prints ``sent N``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from reconciler.certs.member import read_member_certificate
from reconciler.codec import Writer
from reconciler.drivers.peerlinks import PeerLinks
from reconciler.drivers.tls import client_context, server_context
from reconciler.frames import Channel
from reconciler.gossip.messages import (
    Alive,
    Gossip,
    Leave,
    MemberRecord,
    Message,
    NodeMeta,
    PushPull,
    Revoke,
    RingReport,
    Suspect,
    encode,
)
from reconciler.gossip.states import MemberState
from reconciler.home import Home
from reconciler.material import read_member_cert, tls_files
from reconciler.pools import read_pool_info

U32 = 0xFFFFFFFF
GHOST_ADDRESS = "127.0.0.1:9"


def oversized_revocation(pool_id: str, entries: int = 1025) -> bytes:
    """A revocation list of ``entries`` forged entries (the cap is 1024)."""
    out = Writer().raw(b"MNRL").u8(1).text16(pool_id).u16(entries)
    for i in range(entries):
        out.text16(f"sha256:{i:064x}").u64(0).text16("").blob16(bytes(64))
    return out.getvalue()


def attacks(me: str, victim: str, other: str, pool_id: str) -> list[Message]:
    def say(*broadcasts: object) -> Message:
        return Message(Gossip(), 0, "", broadcasts)  # type: ignore[arg-type]

    ghosts = tuple(
        MemberRecord(
            f"node-{0xDEAD0000 + i:016x}",
            NodeMeta(f"ghost{i}", GHOST_ADDRESS, 1 << 40, 64),
            MemberState.ALIVE,
            0,
        )
        for i in range(4096)
    )
    return [
        say(Suspect(victim, U32, me)),  # overflowed the victim's incarnation
        say(Leave(other, U32 - 1)),  # pinned the other as LEFT for good
        say(Leave(other, 1000)),  # a leave not sent by its subject
        Message(PushPull(False, ghosts)),  # 4,096 ghost members in one message
        say(*(Alive(g.node_id, 1, g.meta) for g in ghosts[:1000])),
        say(Alive(victim, 50, NodeMeta("grab", GHOST_ADDRESS, 1 << 41, 4))),  # not its owner
        say(Alive(me, 1, NodeMeta("evil", GHOST_ADDRESS, 1 << 60, 65535))),  # implausible
        say(RingReport(victim, 2**64 - 1, "ab" * 32)),
        *(say(Revoke(bytes([i]) * 2000)) for i in range(20)),  # garbage revocations
        say(Revoke(oversized_revocation(pool_id))),  # 1,025 signatures to check
    ]


async def run(home: Home, pool: str, targets: list[dict[str, str]]) -> int:
    files = tls_files(home, pool)
    der = read_member_cert(home, pool)
    info = read_pool_info(home, pool)
    assert der is not None and info is not None, "the hostile device must be a member"
    me = read_member_certificate(der).node_id
    links = PeerLinks(
        me, server_context(files), client_context(files), lambda *a: None, lambda p: True
    )
    for target in targets:
        host, _, port = target["address"].rpartition(":")
        links.set_address(target["nodeId"], host, int(port))
    victim, other = targets[0]["nodeId"], targets[1]["nodeId"]
    payloads = [encode(m) for m in attacks(me, victim, other, info.pool_id)]
    for target in targets:
        for payload in payloads:
            await links.send_wait(target["nodeId"], Channel.GOSSIP, payload)
    total = sum(len(p) for p in payloads)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        sent = [links.stats.get(t["nodeId"]) for t in targets]
        if all(s is not None and s.bytes_sent >= total for s in sent):
            break
        await asyncio.sleep(0.05)
    else:
        raise SystemExit(f"frames not sent within 60 s: {links.stats}")
    await links.close()
    return len(payloads) * len(targets)


def main() -> None:
    home, pool, targets = Home(Path(sys.argv[1])), sys.argv[2], json.loads(sys.argv[3])
    print("sent", asyncio.run(run(home, pool, targets)), flush=True)


if __name__ == "__main__":
    main()
