"""Choosing the network interfaces for beacons and the address peers should dial.

`auto` beacons on every interface that is up, multicast-capable and not loopback,
except known virtual bridges (docker0, br-*, veth*, virbr*); include and exclude
patterns (the Pool's `discovery.includeInterfaces` / `excludeInterfaces`, or
`MESHNET_BEACON_INCLUDE` / `MESHNET_BEACON_EXCLUDE`, comma-separated, shell-style)
change that set. With none left, `auto` falls back to the interface the routing table
picks for multicast (a UDP `connect` sends nothing), then to loopback.
`MESHNET_BEACON_INTERFACE` overrides the manifest with one interface (the tests and
`mesh demo` pin beacons to loopback, TTL 0, with it).
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatch

import psutil

OVERRIDE_ENV = "MESHNET_BEACON_INTERFACE"
INCLUDE_ENV = "MESHNET_BEACON_INCLUDE"
EXCLUDE_ENV = "MESHNET_BEACON_EXCLUDE"
VIRTUAL_BRIDGES = ("docker*", "br-*", "veth*", "virbr*")


class InterfaceError(Exception):
    """The requested interface does not exist or has no IPv4 address."""


@dataclass(frozen=True)
class Interface:
    """An interface chosen for beacons."""

    name: str
    address: str
    netmask: str = "255.255.255.255"
    multicast: bool = True
    up: bool = True

    @property
    def is_loopback(self) -> bool:
        return ipaddress.ip_address(self.address).is_loopback

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"{self.address}/{self.netmask}", strict=False)

    def holds(self, host: str) -> bool:
        """True when `host` is on this interface's subnet."""
        try:
            return ipaddress.ip_address(host) in self.network
        except ValueError:
            return False


def host_interfaces() -> list[Interface]:
    """Every interface with an IPv4 address (its first), up or not."""
    stats = psutil.net_if_stats()
    found = []
    for name, addresses in psutil.net_if_addrs().items():
        stat = stats.get(name)
        flags = str(getattr(stat, "flags", "multicast")).split(",")
        for address in addresses:
            if address.family == socket.AF_INET:
                up = stat.isup if stat is not None else True
                mask = address.netmask or "255.255.255.255"
                found.append(Interface(name, address.address, mask, "multicast" in flags, up))
                break
    return found


def ipv4_interfaces() -> dict[str, str]:
    """Interface name -> its first IPv4 address, for interfaces that are up."""
    return {i.name: i.address for i in host_interfaces() if i.up}


def _patterns(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


def select_beacon_interfaces(
    interfaces: Iterable[Interface], include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> list[Interface]:
    """The interfaces `auto` beacons on, by name: up, multicast, not loopback, not a
    virtual bridge unless included, not excluded."""

    def matches(name: str, patterns: Sequence[str]) -> bool:
        return any(fnmatch(name, p) for p in patterns)

    chosen = []
    for interface in sorted(interfaces, key=lambda i: i.name):
        if not interface.up or not interface.multicast or interface.is_loopback:
            continue
        if matches(interface.name, VIRTUAL_BRIDGES) and not matches(interface.name, include):
            continue
        if matches(interface.name, exclude):
            continue
        chosen.append(interface)
    return chosen


def resolve_interfaces(
    wanted: str, group: str, include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> list[Interface]:
    """The interfaces for beacons: one when `wanted` (or the override) names it; with
    `auto`, every eligible one, the routing table's choice first."""
    override = os.environ.get(OVERRIDE_ENV)
    if override or wanted != "auto":
        return [resolve_interface(wanted, group)]
    include = [*include, *_patterns(os.environ.get(INCLUDE_ENV))]
    exclude = [*exclude, *_patterns(os.environ.get(EXCLUDE_ENV))]
    chosen = select_beacon_interfaces(host_interfaces(), include, exclude)
    if not chosen:
        return [resolve_interface("auto", group)]
    primary = _routed_source(group)
    return sorted(chosen, key=lambda i: i.address != primary)


def resolve_interface(wanted: str, group: str) -> Interface:
    """The interface for `wanted` (auto, a name, or one of its addresses)."""
    wanted = os.environ.get(OVERRIDE_ENV) or wanted
    interfaces = {i.name: i for i in host_interfaces() if i.up}
    if wanted == "auto":
        return _auto(interfaces, group)
    if wanted in interfaces:
        return interfaces[wanted]
    for interface in interfaces.values():
        if interface.address == wanted:
            return interface
    known = ", ".join(f"{n} ({i.address})" for n, i in sorted(interfaces.items())) or "none"
    raise InterfaceError(f"no interface {wanted!r} with an IPv4 address is up (have: {known})")


def _routed_source(group: str) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((group, 9))
            return str(probe.getsockname()[0])
        except OSError:
            return ""


def _auto(interfaces: dict[str, Interface], group: str) -> Interface:
    source = _routed_source(group)
    for interface in interfaces.values():
        if interface.address == source:
            return interface
    for _name, interface in sorted(interfaces.items()):
        if not interface.is_loopback:
            return interface
    return Interface("lo", "127.0.0.1", "255.0.0.0")


def dial_host(advertised: str, source: str, interfaces: Sequence[Interface]) -> str:
    """Where to dial a peer whose signed beacon advertised `advertised` and came from
    `source`: the advertised host when it is on one of our subnets, else the beacon's
    source when that is (a peer with several legs advertises one of them), else the
    advertised host. The peer link's TLS checks the node either way."""
    if any(i.holds(advertised) for i in interfaces):
        return advertised
    if any(i.holds(source) for i in interfaces):
        return source
    return advertised


def rendezvous_address(addresses: Sequence[str], interfaces: Sequence[Interface]) -> str:
    """Of the host:port addresses a rendezvous lists for a peer, the first on one of
    our subnets, else the first (a routed network, or only the relay reaches it)."""
    for address in addresses:
        if any(i.holds(address.rpartition(":")[0]) for i in interfaces):
            return address
    return addresses[0]
