"""Beacon sockets on loopback (TTL 0, a port of the test's own): where beacons go, the
environment's overrides, a machine pumped on the group and on its unicast socket, and
no socket left open when opening fails half-way."""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any

import pytest

from manifests.pool import DiscoverySpec
from reconciler.drivers import udp
from reconciler.drivers.netif import Interface
from reconciler.runtime import beaconsockets
from reconciler.runtime.beaconsockets import (
    PORT_ENV,
    choose_interfaces,
    destinations,
    effective_discovery,
    open_beacon_sockets,
)

Addr = tuple[str, int]


class Announcer:
    """Sends one datagram to the group at once; records what it hears."""

    def __init__(self, group: Addr) -> None:
        self.heard: list[tuple[bytes, Addr, float]] = []
        self._out: list[tuple[bytes, Addr]] = [(b"hello group", group)]
        self._events: list[Any] = []

    def receive_datagram(self, data: bytes, addr: Addr, now: float) -> None:
        self.heard.append((data, addr, now))
        self._events.append(data)

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Addr]]:
        out, self._out = self._out, []
        return out

    def get_timer(self) -> float | None:
        return None

    def handle_timer(self, now: float) -> None:
        pass

    def next_event(self) -> Any:
        return self._events.pop(0) if self._events else None


def test_beacons_go_to_the_group_then_to_every_static_peer() -> None:
    discovery = DiscoverySpec.model_validate(
        {"port": 5000, "staticPeers": ["127.0.0.2:6000", "127.0.0.3:7000"]}
    )
    assert destinations(discovery) == (
        ("239.192.0.1", 5000),
        ("127.0.0.2", 6000),
        ("127.0.0.3", 7000),
    )
    assert destinations(DiscoverySpec()) == (("239.192.0.1", 42424),)


@pytest.mark.parametrize("value", ["", "0", "65536", "port", "-5"])
def test_only_a_valid_port_in_the_environment_overrides(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = DiscoverySpec.model_validate({"port": 5000})
    monkeypatch.setenv(PORT_ENV, value)
    assert effective_discovery(spec).port == 5000
    monkeypatch.setenv(PORT_ENV, "47001")
    overridden = effective_discovery(spec)
    assert overridden.port == 47001 and overridden.group == spec.group
    assert spec.port == 5000  # the manifest's settings are not changed


def test_the_test_environment_beacons_on_loopback_only() -> None:
    (interface,) = choose_interfaces(DiscoverySpec())
    assert interface.is_loopback


def test_a_machine_hears_the_group_and_unicast_answers_on_loopback() -> None:
    discovery = effective_discovery(DiscoverySpec())
    interfaces = choose_interfaces(discovery)

    async def scenario() -> None:
        heard: asyncio.Queue[Any] = asyncio.Queue()
        machine = Announcer((discovery.group, discovery.port))
        sockets = await open_beacon_sockets(discovery, interfaces, machine, heard.put_nowait)
        try:
            assert sockets.interface == interfaces[0]
            for transport in (sockets.pump.transport, sockets.group_transport):
                assert transport is not None
                sock = transport.get_extra_info("socket")
                assert sock.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL) == 0
            assert await asyncio.wait_for(heard.get(), 10) == b"hello group"
            _, source, now = machine.heard[0]
            assert source[0] == "127.0.0.1"
            assert now > 1e9  # the wall clock (beacons carry timestamps), not the loop's

            assert sockets.pump.transport is not None
            own = sockets.pump.transport.get_extra_info("sockname")
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
                peer.bind(("127.0.0.1", 0))
                peer.sendto(b"an answer", own)
                assert await asyncio.wait_for(heard.get(), 10) == b"an answer"
                assert machine.heard[-1][1] == peer.getsockname()
        finally:
            sockets.close()
        assert sockets.pump.transport.is_closing() and sockets.group_transport.is_closing()

    asyncio.run(scenario())


def test_no_socket_is_left_open_when_an_interface_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    discovery = effective_discovery(DiscoverySpec())
    loopback = Interface("lo", "127.0.0.1", "255.0.0.0")
    real = udp.unicast_socket

    def second_fails(interface: Interface) -> socket.socket:
        if interface.name == "broken":
            raise OSError("interface went down")
        return real(interface)

    monkeypatch.setattr(beaconsockets, "unicast_socket", second_fails)

    async def scenario() -> None:
        before = len(os.listdir("/proc/self/fd"))
        with pytest.raises(OSError, match="went down"):
            await open_beacon_sockets(
                discovery, [loopback, Interface("broken", "127.0.0.1")], Announcer(("", 0)), print
            )
        assert len(os.listdir("/proc/self/fd")) == before

    asyncio.run(scenario())


class Sender:
    """Sends what the test queues; records the sources of what it hears."""

    def __init__(self) -> None:
        self.outbox: list[tuple[bytes, Addr]] = []
        self.heard: asyncio.Queue[tuple[bytes, Addr]] = asyncio.Queue()

    def receive_datagram(self, data: bytes, addr: Addr, now: float) -> None:
        self.heard.put_nowait((data, addr))

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Addr]]:
        out, self.outbox = self.outbox, []
        return out

    def get_timer(self) -> float | None:
        return None

    def handle_timer(self, now: float) -> None:
        pass

    def next_event(self) -> Any:
        return None


def test_multicast_leaves_on_every_interface_and_unicast_on_the_one_that_reaches() -> None:
    """Two loopback "interfaces" (127.0.0.1/8 and 127.0.0.2/32), both TTL 0."""
    discovery = effective_discovery(DiscoverySpec())
    first = Interface("lo", "127.0.0.1", "255.0.0.0")
    second = Interface("lo-b", "127.0.0.2", "255.255.255.255")

    async def scenario() -> None:
        machine = Sender()
        sockets = await open_beacon_sockets(discovery, [first, second], machine, print)
        try:
            assert len(sockets.pump.senders) == 1
            _, extra = sockets.pump.senders[0]
            extra_sock = extra.get_extra_info("socket")
            assert extra_sock.getsockname()[0] == "127.0.0.2"
            assert extra_sock.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL) == 0

            machine.outbox.append((b"beacon", (discovery.group, discovery.port)))
            sockets.pump.flush()
            sources = set()
            for _ in range(2):  # one copy out of each interface, heard on the group
                data, source = await asyncio.wait_for(machine.heard.get(), 10)
                assert data == b"beacon"
                sources.add(source[0])
            assert sources == {"127.0.0.1", "127.0.0.2"}

            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
                peer.bind(("127.0.0.2", 0))
                peer.settimeout(10)
                machine.outbox.append((b"answer", peer.getsockname()))
                sockets.pump.flush()
                data, source = await asyncio.to_thread(peer.recvfrom, 100)
                assert data == b"answer" and source == extra_sock.getsockname()
        finally:
            sockets.close()

    asyncio.run(scenario())
