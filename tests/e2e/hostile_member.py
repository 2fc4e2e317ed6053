"""A member whose valid certificate is in hostile hands. It dials honest agents' peer
links with TLS 1.3 and its member certificate (the project's own client context and
frame encoder), sends the gossip attacks of the security review, waits until each
connection has taken every byte and closed, then exits. Run inside the device's namespace (or on loopback).

    python hostile_member.py MESHNET_HOME POOL_NAME TARGETS_JSON

TARGETS_JSON is ``[{"nodeId": ..., "address": "host:port"}, ...]``: the first target
is the victim of the suspicion and capacity attacks, the second of the forged leave.
Ghost members point at 127.0.0.1:9, inside the namespace. Prints ``sent N``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from reconciler.certs.member import read_member_certificate
from reconciler.codec import Writer
from reconciler.drivers.tls import client_context
from reconciler.frames import Channel, encode_frame
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
    victim, other = targets[0]["nodeId"], targets[1]["nodeId"]
    frames = [
        encode_frame(Channel.GOSSIP, encode(m)) for m in attacks(me, victim, other, info.pool_id)
    ]
    for target in targets:
        host, _, port = target["address"].rpartition(":")
        dial = asyncio.open_connection(
            host, int(port), ssl=client_context(files), server_hostname=target["nodeId"]
        )
        _, writer = await asyncio.wait_for(dial, 30)
        for frame in frames:
            writer.write(frame)
            await writer.drain()
        writer.close()
        await asyncio.wait_for(writer.wait_closed(), 30)  # TLS close_notify: all was sent
    return len(frames) * len(targets)


def main() -> None:
    home, pool, targets = Home(Path(sys.argv[1])), sys.argv[2], json.loads(sys.argv[3])
    print("sent", asyncio.run(run(home, pool, targets)), flush=True)


if __name__ == "__main__":
    main()
