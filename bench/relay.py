"""Relay and control-plane figures on loopback (bounded in count and time).

- relay throughput (MB/s) through a circuit with end-to-end TLS, vs a direct TLS link
- added latency per small message (round trip of 64 bytes), relay vs direct
- control plane requests/s for GET /v1/ring with 50 concurrent clients

Run: .venv/bin/python bench/relay.py
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from manifests import ObjectMeta, Pool
from reconciler.certs.identity import NodeIdentity
from reconciler.certs.member import sign_member_certificate
from reconciler.certs.x509util import der_to_pem
from reconciler.controlplane.limits import CONNECTIONS_PER_ADDRESS
from reconciler.controlplane.serve import ControlPlane
from reconciler.drivers.service_tls import load_served_pools
from reconciler.drivers.tls import TlsFiles, client_context, server_context
from reconciler.home import Home
from reconciler.pools import create_root, load_root
from reconciler.relay.client import RelayClient
from reconciler.relay.server import RelayServer

BULK = 32 * 2**20
ROUND_TRIPS = 500
HTTP_REQUESTS = 2000
CONCURRENCY = 50
Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def _member(home: Home, tmp: Path, name: str) -> tuple[NodeIdentity, TlsFiles]:
    root = load_root(home, "bench")
    identity = NodeIdentity(os.urandom(32))
    cert = sign_member_certificate(root, identity.public_key, name, "member", time.time())
    files = TlsFiles(tmp / f"{name}.crt", tmp / f"{name}.key", home.pool_dir("bench") / "ca.crt")
    files.cert.write_bytes(der_to_pem(cert))
    files.key.write_bytes(identity.private_key_pem())
    return identity, files


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(2**16):
        writer.write(data)
        await writer.drain()
    writer.close()


async def _measure(streams: Streams) -> tuple[float, float]:
    """(MB/s one way with echo, median round trip in ms of a 64-byte message)."""
    reader, writer = streams
    rtts = []
    for _ in range(ROUND_TRIPS):
        start = time.perf_counter()
        writer.write(b"p" * 64)
        await writer.drain()
        await reader.readexactly(64)
        rtts.append(time.perf_counter() - start)
    chunk = b"x" * 2**16
    start = time.perf_counter()

    async def pump() -> None:
        for _ in range(BULK // len(chunk)):
            writer.write(chunk)
            await writer.drain()

    sender = asyncio.create_task(pump())
    await reader.readexactly(BULK)
    await sender
    elapsed = time.perf_counter() - start
    writer.close()
    return BULK / elapsed / 1e6, statistics.median(rtts) * 1000


async def _direct(files_a: TlsFiles, files_b: TlsFiles) -> tuple[float, float]:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0, ssl=server_context(files_b))
    port = server.sockets[0].getsockname()[1]
    streams = await asyncio.open_connection("127.0.0.1", port, ssl=client_context(files_a))
    try:
        return await _measure(streams)
    finally:
        server.close()


async def _relayed(
    home: Home, a: tuple[NodeIdentity, TlsFiles], b: tuple[NodeIdentity, TlsFiles]
) -> tuple[float, float]:
    pools = load_served_pools(home, "relay", [home.pool_dir("bench") / "ca.crt"], time.time())
    server = RelayServer(pools, None, home)
    port = await server.start("127.0.0.1", 0)
    pool_id = pools[0].anchor.pool_id

    def client(member: tuple[NodeIdentity, TlsFiles], echo: bool) -> RelayClient:
        ctx_c, ctx_s = client_context(member[1]), server_context(member[1])
        handler = (lambda _peer, r, w: _echo(r, w)) if echo else None
        return RelayClient("127.0.0.1", port, member[0].node_id, pool_id, ctx_c, ctx_s, handler)

    ca, cb = client(a, False), client(b, True)
    ca.start()
    cb.start()
    try:
        await cb.wait_reserved(10)
        return await _measure(await ca.open_circuit(b[0].node_id))
    finally:
        await ca.close()
        await cb.close()
        await server.close()


async def _control_plane(home: Home, files: TlsFiles) -> float:
    plane = ControlPlane(home, "127.0.0.1", 47080, 47179)
    port = await plane.start()
    ctx = client_context(files)
    try:
        async with httpx.AsyncClient(verify=ctx, base_url=f"https://127.0.0.1:{port}") as http:
            await http.get("/v1/ring")
            remaining = HTTP_REQUESTS

            async def worker(n: int) -> None:
                nonlocal remaining
                # the control plane caps connections per address (limits.py): spread the
                # clients over loopback source addresses, as clients on many devices are
                source = f"127.0.0.{2 + n // CONNECTIONS_PER_ADDRESS}"
                transport = httpx.AsyncHTTPTransport(verify=ctx, local_address=source)
                async with httpx.AsyncClient(transport=transport, base_url=http.base_url) as mine:
                    while remaining > 0:
                        remaining -= 1
                        (await mine.get("/v1/ring")).raise_for_status()

            start = time.perf_counter()
            await asyncio.wait_for(asyncio.gather(*(worker(n) for n in range(CONCURRENCY))), 120)
            return HTTP_REQUESTS / (time.perf_counter() - start)
    finally:
        await plane.stop()


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Home(Path(tmp) / "home")
        create_root(home, "bench")
        from reconciler.store import Store

        with Store.open(home.root) as store:
            store.apply(Pool(metadata=ObjectMeta(name="bench")))
            store.put_observed("ring/bench", {"members": ["a", "b"], "converged": True})
        a, b = _member(home, Path(tmp), "a"), _member(home, Path(tmp), "b")
        direct_mbs, direct_ms = await _direct(a[1], b[1])
        relay_mbs, relay_ms = await _relayed(home, a, b)
        rps = await _control_plane(home, a[1])
    print(
        f"relay throughput        {relay_mbs:8.1f} MB/s   (direct TLS link {direct_mbs:.1f} MB/s)"
    )
    print(
        f"small-message round trip {relay_ms:7.3f} ms    (direct {direct_ms:.3f} ms; "
        f"added by the relay {relay_ms - direct_ms:.3f} ms)"
    )
    print(f"control plane GET /v1/ring {rps:6.0f} req/s with {CONCURRENCY} concurrent clients")


if __name__ == "__main__":
    asyncio.run(main())
