"""Choosing the network interface for beacons and the address peers should dial.

`auto` asks the routing table which source address multicast would leave from (a UDP
`connect` sends nothing), then falls back to the first interface that is up with an
IPv4 address, then to loopback. `MESHNET_BEACON_INTERFACE` overrides the manifest (the
tests and `mesh demo` pin beacons to loopback with it).
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass

import psutil

OVERRIDE_ENV = "MESHNET_BEACON_INTERFACE"


class InterfaceError(Exception):
    """The requested interface does not exist or has no IPv4 address."""


@dataclass(frozen=True)
class Interface:
    """An interface chosen for beacons."""

    name: str
    address: str

    @property
    def is_loopback(self) -> bool:
        return ipaddress.ip_address(self.address).is_loopback


def ipv4_interfaces() -> dict[str, str]:
    """Interface name -> its first IPv4 address, for interfaces that are up."""
    stats = psutil.net_if_stats()
    found = {}
    for name, addresses in psutil.net_if_addrs().items():
        if name in stats and not stats[name].isup:
            continue
        for address in addresses:
            if address.family == socket.AF_INET:
                found[name] = address.address
                break
    return found


def resolve_interface(wanted: str, group: str) -> Interface:
    """The interface for `wanted` (auto, a name, or one of its addresses)."""
    wanted = os.environ.get(OVERRIDE_ENV) or wanted
    interfaces = ipv4_interfaces()
    if wanted == "auto":
        return _auto(interfaces, group)
    if wanted in interfaces:
        return Interface(wanted, interfaces[wanted])
    for name, address in interfaces.items():
        if address == wanted:
            return Interface(name, address)
    known = ", ".join(f"{n} ({a})" for n, a in sorted(interfaces.items())) or "none"
    raise InterfaceError(f"no interface {wanted!r} with an IPv4 address is up (have: {known})")


def _auto(interfaces: dict[str, str], group: str) -> Interface:
    by_address = {address: name for name, address in interfaces.items()}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((group, 9))
            source = probe.getsockname()[0]
        except OSError:
            source = ""
    if source in by_address:
        return Interface(by_address[source], source)
    for name, address in sorted(interfaces.items()):
        if not ipaddress.ip_address(address).is_loopback:
            return Interface(name, address)
    return Interface("lo", "127.0.0.1")
