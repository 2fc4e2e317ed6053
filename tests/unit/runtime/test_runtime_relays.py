"""A pool's relays on this device: which relays it uses, a reservation and a
registration on each, circuits through the first relay that can make one, and, on
loopback with a real relay, a peer link that falls back to a circuit."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar, cast

import pytest

from reconciler.certs.identity import NodeIdentity
from reconciler.certs.root import PoolRoot, create_pool_root
from reconciler.drivers.peerlinks import PeerLinks, Streams
from reconciler.drivers.service_tls import load_served_pools
from reconciler.drivers.tls import TlsFiles, client_context, server_context
from reconciler.frames import Channel
from reconciler.home import Home
from reconciler.pools import create_root, load_root
from reconciler.relay.messages import PeerEntry, Register
from reconciler.relay.server import RelayServer
from reconciler.runtime import relays
from reconciler.runtime.relays import PoolRelays

MemberFactory = Callable[[Path, PoolRoot, str], tuple[NodeIdentity, TlsFiles]]
REGISTRATION = Register("box", ("127.0.0.1:7000",), 1 << 30, 4)


class FakeClient:
    """A relay client whose reservation and circuits the test decides."""

    made: ClassVar[list[FakeClient]] = []

    def __init__(self, host: str, port: int, *args: Any, **kwargs: Any) -> None:
        self.host, self.port = host, port
        self.on_circuit = kwargs["on_circuit"]
        self.reserved = False
        self.last_error = "connection refused"
        self.registration: Register | None = None
        self.on_peers: Callable[[tuple[PeerEntry, ...]], None] | None = None
        self.peers_heard = 0
        self.started = self.closed = False
        self.circuit: Streams | Exception = OSError("unused")
        FakeClient.made.append(self)

    def start(self) -> None:
        self.started = True

    def register(self, registration: Register) -> None:
        self.registration = registration

    async def open_circuit(self, node_id: str) -> Streams:
        if isinstance(self.circuit, Exception):
            raise self.circuit
        return self.circuit

    async def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_clients(monkeypatch: pytest.MonkeyPatch) -> list[FakeClient]:
    FakeClient.made = []
    monkeypatch.setattr(relays, "RelayClient", FakeClient)
    return FakeClient.made


@pytest.fixture
def tls(tmp_path: Path, member_tls: MemberFactory) -> TlsFiles:
    root = create_pool_root(os.urandom(32), "p", time.time())
    return member_tls(tmp_path, root, "me")[1]


def _links() -> Any:
    return SimpleNamespace(relay_dial=None, relayed=[], accept_relayed=None)


def _relays(home: Home, configured: list[str]) -> PoolRelays:
    return PoolRelays(home, configured, "node-000000000000000a", "pool-1")


def test_the_pools_relays_and_one_on_this_device(home: Home) -> None:
    home.root.mkdir(parents=True)
    pool_relays = _relays(home, ["relay.lan:4001", "10.0.0.9:4001", "relay.lan:4001"])
    assert pool_relays.addresses() == [("relay.lan", 4001), ("10.0.0.9", 4001)]
    (home.root / "relay.port").write_text("4555\n")
    assert pool_relays.addresses()[-1] == ("127.0.0.1", 4555)
    (home.root / "relay.port").write_text("not a port")
    assert pool_relays.addresses() == [("relay.lan", 4001), ("10.0.0.9", 4001)]


def test_every_relay_gets_the_registration_before_or_after_start(
    home: Home, tls: TlsFiles, fake_clients: list[FakeClient]
) -> None:
    async def scenario() -> None:
        pool_relays = _relays(home, ["127.0.0.1:4001"])
        pool_relays.register(REGISTRATION)
        links = _links()
        pool_relays.start(tls, cast(PeerLinks, links), lambda peer: True)
        (client,) = fake_clients
        assert client.started and client.registration == REGISTRATION
        assert links.relay_dial == pool_relays.dial  # peer links may fall back to circuits
        later = Register("box", ("127.0.0.1:7001",), 1 << 30, 4)
        pool_relays.register(later)
        assert client.registration == later

        heard: list[tuple[PeerEntry, ...]] = []
        assert client.on_peers is not None
        client.on_peers((PeerEntry("node-b", "b", ("127.0.0.1:1",), 1, 1),))  # before a listener
        pool_relays.on_peers = heard.append
        client.on_peers((PeerEntry("node-c", "c", ("127.0.0.1:2",), 1, 1),))
        assert [entries[0].node_id for entries in heard] == ["node-c"]
        await pool_relays.close()
        assert client.closed

    asyncio.run(scenario())


def test_without_relays_links_never_fall_back(
    home: Home, tls: TlsFiles, fake_clients: list[FakeClient]
) -> None:
    async def scenario() -> None:
        links = _links()
        _relays(home, []).start(tls, cast(PeerLinks, links), lambda peer: True)
        assert links.relay_dial is None and fake_clients == []

    asyncio.run(scenario())


def test_a_circuit_comes_from_the_first_relay_that_can_make_one(
    home: Home, tls: TlsFiles, fake_clients: list[FakeClient]
) -> None:
    async def scenario() -> None:
        pool_relays = _relays(home, ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4"])
        pool_relays.start(tls, cast(PeerLinks, _links()), lambda peer: True)
        _unreserved, failing, good, spare = fake_clients
        failing.reserved = good.reserved = spare.reserved = True
        failing.circuit = ConnectionResetError("relay hung up")
        streams = cast(Streams, ("reader", "writer"))
        good.circuit = streams
        spare.circuit = AssertionError("never asked")
        assert await pool_relays.dial("node-b") is streams

        good.circuit = TimeoutError("no answer")
        spare.reserved = False
        with pytest.raises(ConnectionError) as err:
            await pool_relays.dial("node-b")
        message = str(err.value)
        assert "node-b" in message and "relay hung up" in message and "no answer" in message
        assert "127.0.0.1:1: no reservation (connection refused)" in message
        status = pool_relays.status()
        assert [s["address"] for s in status] == [f"127.0.0.1:{p}" for p in (1, 2, 3, 4)]
        assert [s["reserved"] for s in status] == [False, True, True, False]
        await pool_relays.close()

    asyncio.run(scenario())


@asynccontextmanager
async def _relay(home: Home, ca: Path) -> AsyncIterator[int]:
    server = RelayServer(load_served_pools(home, "relay", [ca], time.time()), None, home)
    port = await server.start("127.0.0.1", 0)
    try:
        yield port
    finally:
        await server.close()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_peer_link_without_a_direct_path_goes_through_the_relay(
    home: Home, tmp_path: Path, member_tls: MemberFactory
) -> None:
    create_root(home, "p")  # the relay serves the pools of its home
    root = load_root(home, "p")
    a_id, a_files = member_tls(tmp_path, root, "a")
    b_id, b_files = member_tls(tmp_path, root, "b")

    async def scenario() -> None:
        inbox: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        a_peers: asyncio.Queue[tuple[PeerEntry, ...]] = asyncio.Queue()
        b_peers: asyncio.Queue[tuple[PeerEntry, ...]] = asyncio.Queue()

        def links(identity: NodeIdentity, files: TlsFiles) -> PeerLinks:
            return PeerLinks(
                identity.node_id, server_context(files), client_context(files),
                lambda node, channel, payload: inbox.put_nowait((node, payload)),
                lambda peer: True,
            )  # fmt: skip

        async with _relay(home, home.pool_dir("p") / "ca.crt") as port:
            a_links, b_links = links(a_id, a_files), links(b_id, b_files)
            a_relays = PoolRelays(home, [f"127.0.0.1:{port}"], a_id.node_id, root.pool_id)
            b_relays = PoolRelays(home, [f"127.0.0.1:{port}"], b_id.node_id, root.pool_id)
            a_relays.on_peers, b_relays.on_peers = a_peers.put_nowait, b_peers.put_nowait
            try:
                a_relays.register(Register("a", ("127.0.0.1:9",), 1 << 30, 2))
                a_relays.start(a_files, a_links, lambda peer: True)
                assert await asyncio.wait_for(a_peers.get(), 10) == ()  # registered, alone
                b_relays.start(b_files, b_links, lambda peer: True)
                b_relays.register(Register("b", ("127.0.0.1:9",), 1 << 30, 2))
                entries = await asyncio.wait_for(b_peers.get(), 10)
                assert [e.node_id for e in entries] == [a_id.node_id]  # the rendezvous
                for client in (*a_relays.clients, *b_relays.clients):
                    await client.wait_reserved(10)
                a_links.set_address(b_id.node_id, "127.0.0.1", _closed_port())
                assert a_links.send(b_id.node_id, Channel.GOSSIP, b"via the relay")
                assert await asyncio.wait_for(inbox.get(), 10) == (a_id.node_id, b"via the relay")
                assert a_links.stats[b_id.node_id].connected
            finally:
                for closing in (a_relays, b_relays, a_links, b_links):
                    await closing.close()

    asyncio.run(scenario())
