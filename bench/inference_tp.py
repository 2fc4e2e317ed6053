"""Benchmark a TP=2 job over real peer links (TLS 1.3 on 127.0.0.1) on the demo model.

    .venv/bin/python bench/inference_tp.py               # coordinator here, member in a child
    .venv/bin/python bench/inference_tp.py --one-process # both JobServices in this process
    .venv/bin/python bench/inference_tp.py --wire q80    # 8-bit all-reduce contributions

Two JobServices (coordinator and member), each with its own PeerLinks and pool
certificate, run SmolLM2-135M-Instruct split 50/50. Prints prefill and decode tokens/s,
time to first token, bytes on the wire per decoded token (measured: a job of N tokens
minus a job of 1 token, both ranks), collectives and messages per token (one round:
each rank sends one message to each other rank per collective), per-member compute and
comm ms, and a TP=1 job for reference. Figures only: no assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# Two ranks share this machine: one BLAS thread each (set the variable to override).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from reconciler.certs.identity import NodeIdentity
from reconciler.certs.member import sign_member_certificate
from reconciler.certs.root import create_pool_root
from reconciler.certs.x509util import der_to_pem
from reconciler.drivers.peerlinks import PeerLinks
from reconciler.drivers.tls import TlsFiles, client_context, server_context
from reconciler.frames import Channel
from reconciler.gossip.ring import Ring, RingMember, compute_ring
from reconciler.inference import SamplingParams, demo_model_path, load_model_info
from reconciler.jobs.links import ControlSender, LinksTensorSender, route_frame
from reconciler.jobs.results import JobRequest, JobResult
from reconciler.jobs.service import JobService

PROMPT_TOKENS = 64
DECODE_TOKENS = 48
ROUNDS = 3
WIRE = "f32"  # --wire: all-reduce contributions as float32 or Q80 blocks (in the offer)


def make_member(home: Path, name: str, root: Any) -> tuple[str, TlsFiles]:
    identity = NodeIdentity(os.urandom(32))
    cert = sign_member_certificate(
        root, identity.public_key, identity.node_id, "member", time.time()
    )
    files = TlsFiles(home / f"{name}.crt", home / f"{name}.key", home / "ca.crt")
    files.cert.write_bytes(der_to_pem(cert))
    files.key.write_bytes(identity.private_key_pem())
    files.ca.write_bytes(root.anchor.cert_pem)
    return identity.node_id, files


def node(node_id: str, files: TlsFiles, ring: Ring | None) -> tuple[PeerLinks, JobService]:
    """PeerLinks + JobService of one member, frames routed to the service."""
    holder: list[JobService] = []

    def on_frame(peer: str, channel: Channel, payload: bytes) -> None:
        route_frame(holder[0], peer, channel, payload)

    links = PeerLinks(
        node_id, server_context(files), client_context(files), on_frame, lambda _: True
    )
    loop = asyncio.get_running_loop()
    service = JobService(
        node_id,
        send_control=ControlSender(links),
        tensor_transport_factory=lambda: LinksTensorSender(links, loop),
        model_resolver=lambda ref: demo_model_path(),
        ring_view=(lambda: ring) if ring is not None else None,
    )
    holder.append(service)
    return links, service


async def member_main(config_path: Path) -> None:
    """Child process: the second member; prints its port, serves until stdin closes."""
    asyncio.get_running_loop().set_exception_handler(_quiet_cancelled)
    cfg = json.loads(config_path.read_text())
    files = TlsFiles(*(Path(p) for p in cfg["files"]))
    links, service = node(cfg["self"], files, None)
    port = await links.listen("127.0.0.1", 0)
    links.set_address(cfg["peer"], "127.0.0.1", cfg["peer_port"])
    print(port, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    service.close()
    await links.close()


def prompt_ids() -> list[int]:
    tokenizer = load_model_info(demo_model_path()).tokenizer
    text = "The quick brown fox jumps over the lazy dog. " * 20
    return tokenizer.encode(text)[:PROMPT_TOKENS]


async def run_jobs(service: JobService, ring: Ring, prompt: list[int]) -> dict[str, Any]:
    """Warm-up, then ROUNDS of (1-token job, N-token job)."""

    async def job(name: str, tokens: int) -> JobResult:
        params = SamplingParams(max_tokens=tokens, ignore_eos=True)
        return await service.run(JobRequest(name, "demo", prompt, params, ring, wire=WIRE))

    start = time.perf_counter()
    await job("warm-up", 2)
    load_s = time.perf_counter() - start
    rounds = [(await job(f"p{i}", 1), await job(f"d{i}", DECODE_TOKENS)) for i in range(ROUNDS)]
    return {"load_s": load_s, "rounds": rounds}


def report(title: str, figures: dict[str, Any]) -> None:
    rounds: list[tuple[JobResult, JobResult]] = figures["rounds"]
    best = max(rounds, key=lambda r: r[1].tokens_per_second or 0.0)
    one, full = best
    n = full.completion_tokens - one.completion_tokens
    print(f"\n== {title} ==")
    print(f"first job (slices loaded, then 2 tokens): {figures['load_s']:.2f} s")
    decode = [r[1].tokens_per_second or 0.0 for r in rounds]
    prefill = [r[1].prefill_tokens_per_second or 0.0 for r in rounds]
    print(f"decode tokens/s   best {max(decode):8.1f}   median {statistics.median(decode):8.1f}")
    print(f"prefill tokens/s  best {max(prefill):8.1f}   median {statistics.median(prefill):8.1f}")
    print(f"time to first token {full.time_to_first_token_ms:.1f} ms ({full.prompt_tokens} prompt)")
    for m_one, m_full in zip(one.members, full.members, strict=True):
        per_tok = (m_full.bytes_sent - m_one.bytes_sent) / n
        calls = (m_full.collectives - m_one.collectives) / n
        msgs = m_full.messages_sent / max(m_full.collectives, 1)
        print(
            f"member {m_full.node_id[:12]} cols [{m_full.start},{m_full.end}): "
            f"compute {m_full.compute_ms:8.1f} ms  comm {m_full.comm_ms:8.1f} ms  "
            f"sent {m_full.bytes_sent / 1e6:6.2f} MB"
        )
        if len(full.members) > 1:
            print(
                f"    per decoded token: {per_tok:8.0f} bytes on the wire, {calls:.0f} collectives,"
                f" {msgs:.0f} message(s) to each peer per collective (one round)"
            )
            print(f"    prefill of {one.prompt_tokens} tokens sent {m_one.bytes_sent / 1e3:.1f} kB")


async def coordinator_main(one_process: bool) -> None:
    asyncio.get_running_loop().set_exception_handler(_quiet_cancelled)
    home = Path(tempfile.mkdtemp(prefix="meshnet-bench-"))
    root = create_pool_root(os.urandom(32), "bench", time.time())
    (a_id, a_files), (b_id, b_files) = (make_member(home, n, root) for n in ("a", "b"))
    ring = compute_ring(
        "bench", [RingMember(a_id, "a", "127.0.0.1"), RingMember(b_id, "b", "127.0.0.1")]
    )
    prompt = prompt_ids()

    solo = JobService(a_id, lambda n, p: True, lambda: _NoSend(), lambda ref: demo_model_path())
    solo_ring = compute_ring("solo", [RingMember(a_id, "a", "127.0.0.1")])
    report("TP=1 (no network)", await run_jobs(solo, solo_ring, prompt))
    solo.close()

    links, service = node(a_id, a_files, ring)
    port = await links.listen("127.0.0.1", 0)
    child: subprocess.Popen[str] | None = None
    others: list[tuple[PeerLinks, JobService]] = []
    try:
        if one_process:
            b_links, b_service = node(b_id, b_files, ring)
            others.append((b_links, b_service))
            b_port = await b_links.listen("127.0.0.1", 0)
            b_links.set_address(a_id, "127.0.0.1", port)
        else:
            switch = ("--switch-interval", str(sys.getswitchinterval()))
            cfg = home / "member.json"
            paths = [str(b_files.cert), str(b_files.key), str(b_files.ca)]
            cfg.write_text(
                json.dumps({"self": b_id, "files": paths, "peer": a_id, "peer_port": port})
            )
            child = subprocess.Popen(
                [*(sys.executable, __file__, "--member", str(cfg)), *switch],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert child.stdout is not None
            line = await asyncio.get_running_loop().run_in_executor(None, child.stdout.readline)
            b_port = int(line)
        links.set_address(b_id, "127.0.0.1", b_port)
        where = "one process" if one_process else "two processes"
        report(
            f"TP=2 over TLS peer links on 127.0.0.1, {where}", await run_jobs(service, ring, prompt)
        )
    finally:
        service.close()
        await links.close()
        for b_links, b_service in others:
            b_service.close()
            await b_links.close()
        if child is not None:
            assert child.stdin is not None
            child.stdin.close()
            child.wait(30)


def _quiet_cancelled(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Links closed at exit cancel their readers: not worth a traceback."""
    if not isinstance(context.get("exception"), asyncio.CancelledError):
        loop.default_exception_handler(context)


class _NoSend:
    def send(self, node_id: str, payload: bytes) -> None:
        raise ConnectionError("a lone member sends nothing")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one-process", action="store_true", help="both members in this process")
    parser.add_argument(
        "--switch-interval", type=float, default=None, help="sys.setswitchinterval (seconds)"
    )
    parser.add_argument("--wire", choices=["f32", "q80"], default="f32",
                        help="all-reduce contributions on the wire")  # fmt: skip
    parser.add_argument("--member", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    global WIRE
    WIRE = args.wire
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)
    if args.member is not None:
        asyncio.run(member_main(args.member))
    else:
        asyncio.run(coordinator_main(args.one_process))


if __name__ == "__main__":
    main()
