"""A two-member job over real PeerLinks (TLS 1.3, pool certificates) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

from reconciler.certs.identity import NodeIdentity
from reconciler.certs.root import PoolRoot, create_pool_root
from reconciler.drivers.peerlinks import PeerLinks
from reconciler.drivers.tls import TlsFiles, client_context, server_context
from reconciler.frames import Channel
from reconciler.gossip.ring import Ring, RingMember, compute_ring
from reconciler.inference import Engine, SamplingParams, full_share, load_model_info, load_shard
from reconciler.jobs.links import ControlSender, LinksTensorSender, route_frame
from reconciler.jobs.results import JobRequest, JobResult
from reconciler.jobs.service import JobService

MODEL = "tiny-llama.gguf"

MemberFactory = Callable[[Path, PoolRoot, str], tuple[NodeIdentity, TlsFiles]]


def _node(
    identity: NodeIdentity, files: TlsFiles, models: Path, ring: list[Ring]
) -> tuple[PeerLinks, JobService]:
    services: list[JobService] = []

    def on_frame(node: str, channel: Channel, payload: bytes) -> None:
        route_frame(services[0], node, channel, payload)

    links = PeerLinks(
        identity.node_id, server_context(files), client_context(files), on_frame, lambda _: True
    )
    loop = asyncio.get_running_loop()
    service = JobService(
        identity.node_id,
        send_control=ControlSender(links),
        tensor_transport_factory=lambda: LinksTensorSender(links, loop),
        model_resolver=lambda ref: models / ref,
        ring_view=lambda: ring[0],
    )
    services.append(service)
    return links, service


def test_two_members_over_tls(tmp_path: Path, models: Path, member_tls: MemberFactory) -> None:
    root = create_pool_root(os.urandom(32), "p", time.time())
    ids = [member_tls(tmp_path, root, name) for name in ("a", "b")]
    info = load_model_info(models / MODEL)
    prompt = info.tokenizer.encode("Hello world")
    params = SamplingParams(max_tokens=6, ignore_eos=True)
    oracle = Engine(info.config, load_shard(models / MODEL, info.config, full_share(info.config)))
    want = [e.token_id for e in oracle.generate(prompt, params)]

    async def scenario() -> tuple[JobResult, list[int]]:
        members = [
            RingMember(i.node_id, name, "127.0.0.1") for (i, _), name in zip(ids, "ab", strict=True)
        ]
        ring = [compute_ring("p", members)]
        nodes = [_node(identity, files, models, ring) for identity, files in ids]
        try:
            ports = [await links.listen("127.0.0.1", 0) for links, _ in nodes]
            for (links, _), (other, _), port in zip(
                nodes, reversed(ids), reversed(ports), strict=True
            ):
                links.set_address(other.node_id, "127.0.0.1", port)
            request = JobRequest("tls-job", MODEL, prompt, params, ring[0])
            result = await asyncio.wait_for(nodes[1][1].run(request), 30)
            sent = [sum(s.bytes_sent for s in links.stats.values()) for links, _ in nodes]
            return result, sent
        finally:
            for links, service in nodes:
                service.close()
                await links.close()

    result, link_bytes = asyncio.run(scenario())
    assert result.token_ids == want
    assert [m.node_id for m in result.members] == sorted(i.node_id for i, _ in ids)
    assert all(m.bytes_sent > 0 and m.messages_sent == m.collectives for m in result.members)
    for member, on_link in zip(result.members, link_bytes, strict=True):
        assert on_link > member.bytes_sent  # tensors (and control frames) crossed the links
