"""Which interfaces beacons use, and where a beacon's sender is dialled."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from reconciler.drivers import netif
from reconciler.drivers.netif import Interface, dial_host, select_beacon_interfaces
from reconciler.drivers.udp import DatagramPump

LAN = Interface("eth0", "192.0.2.10", "255.255.255.0")
WIFI = Interface("wlan0", "198.51.100.7", "255.255.255.0")
LOOP = Interface("lo", "127.0.0.1", "255.0.0.0", multicast=False)
DOCKER = Interface("docker0", "203.0.113.1", "255.255.255.0")
BRIDGE = Interface("br-5e1f", "203.0.113.129", "255.255.255.128")
DOWN = Interface("eth1", "192.0.2.200", "255.255.255.0", up=False)
NO_MCAST = Interface("tun0", "10.8.0.2", "255.255.255.0", multicast=False)


def names(interfaces: list[Interface]) -> list[str]:
    return [i.name for i in interfaces]


def test_auto_takes_every_up_multicast_leg_but_loopback_and_bridges() -> None:
    chosen = select_beacon_interfaces([LOOP, DOCKER, WIFI, BRIDGE, LAN, DOWN, NO_MCAST])
    assert names(chosen) == ["eth0", "wlan0"]


def test_include_and_exclude_patterns_change_the_set() -> None:
    everything = [LOOP, DOCKER, WIFI, BRIDGE, LAN]
    assert names(select_beacon_interfaces(everything, include=["docker*"])) == [
        "docker0", "eth0", "wlan0",
    ]  # fmt: skip
    assert names(select_beacon_interfaces(everything, exclude=["wlan*"])) == ["eth0"]


def test_the_loopback_override_still_pins_one_interface(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(netif.OVERRIDE_ENV, "127.0.0.1")
    chosen = netif.resolve_interfaces("auto", "239.192.0.1")
    assert len(chosen) == 1 and chosen[0].is_loopback


def test_environment_patterns_apply_to_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(netif.OVERRIDE_ENV, raising=False)
    monkeypatch.setattr(netif, "host_interfaces", lambda: [LAN, WIFI, DOCKER, LOOP])
    monkeypatch.setattr(netif, "_routed_source", lambda group: WIFI.address)
    monkeypatch.setenv(netif.EXCLUDE_ENV, "eth*")
    monkeypatch.setenv(netif.INCLUDE_ENV, "docker0")
    assert names(netif.resolve_interfaces("auto", "239.192.0.1")) == ["wlan0", "docker0"]


def test_auto_with_no_eligible_leg_falls_back_to_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(netif.OVERRIDE_ENV, raising=False)
    monkeypatch.setattr(netif, "host_interfaces", lambda: [LOOP, DOCKER])
    monkeypatch.setattr(netif, "_routed_source", lambda group: "")
    assert names(netif.resolve_interfaces("auto", "239.192.0.1")) == ["docker0"]


def test_a_peer_is_dialled_where_it_is_reachable() -> None:
    legs = [LAN]
    assert dial_host("192.0.2.44", "192.0.2.44", legs) == "192.0.2.44"
    # a two-legged peer advertises its other leg: dial the source of its beacon
    assert dial_host("198.51.100.9", "192.0.2.45", legs) == "192.0.2.45"
    # neither on our subnets (routed): trust the signed advertisement
    assert dial_host("198.51.100.9", "203.0.113.5", legs) == "198.51.100.9"


class _Transport:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any]] = []

    def sendto(self, data: bytes, addr: Any) -> None:
        self.sent.append((data, addr))

    def close(self) -> None:
        pass


class _Machine:
    def __init__(self, out: list[tuple[bytes, tuple[str, int]]]) -> None:
        self.out = out

    def receive_datagram(self, data: bytes, addr: tuple[str, int], now: float) -> None:
        pass

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, tuple[str, int]]]:
        out, self.out = self.out, []
        return out

    def get_timer(self) -> float | None:
        return None

    def handle_timer(self, now: float) -> None:
        pass

    def next_event(self) -> None:
        return None


def test_multicast_leaves_on_every_leg_and_unicast_on_the_right_one() -> None:
    asyncio.run(_routing())


async def _routing() -> None:
    machine = _Machine([
        (b"presence", ("239.192.0.1", 42424)),
        (b"answer", ("198.51.100.20", 5000)),
        (b"static", ("203.0.113.9", 42424)),
    ])  # fmt: skip
    pump = DatagramPump(machine, lambda event: None, asyncio.get_running_loop().time)
    first, second = _Transport(), _Transport()
    pump.add_sender(WIFI, second)  # type: ignore[arg-type]
    pump.connection_made(first)  # type: ignore[arg-type]
    group = ("239.192.0.1", 42424)
    assert first.sent == [(b"presence", group), (b"static", ("203.0.113.9", 42424))]
    assert second.sent == [(b"presence", group), (b"answer", ("198.51.100.20", 5000))]
    pump.close()
