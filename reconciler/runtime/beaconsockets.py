"""Opening the beacon sockets of a runtime and pumping a beacon machine on them.

One socket joins the multicast group on the beacon port (shared by every agent of the
host) on every beacon interface; one more per interface, on an ephemeral port, sends
(multicast on every interface, unicast on the one that reaches the destination) and
hears unicast answers.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from manifests.fields import split_host_port
from manifests.pool import DiscoverySpec
from reconciler.drivers.netif import Interface, resolve_interfaces
from reconciler.drivers.udp import (
    DatagramMachine,
    DatagramPump,
    listen_into,
    multicast_socket,
    open_pump,
    unicast_socket,
)


@dataclass
class BeaconSockets:
    """The pump and the group listener of one beacon machine."""

    interfaces: list[Interface]
    pump: DatagramPump
    group_transport: asyncio.DatagramTransport

    @property
    def interface(self) -> Interface:
        """The first (primary) interface: the routing table's choice for multicast."""
        return self.interfaces[0]

    def close(self) -> None:
        self.pump.close()
        self.group_transport.close()


def destinations(discovery: DiscoverySpec) -> tuple[tuple[str, int], ...]:
    """Where beacons go: the multicast group, then every static peer."""
    static = tuple(split_host_port(peer) for peer in discovery.static_peers)
    return ((discovery.group, discovery.port), *static)


PORT_ENV = "MESHNET_BEACON_PORT"


def effective_discovery(discovery: DiscoverySpec) -> DiscoverySpec:
    """The manifest's discovery settings with the environment's overrides applied
    ($MESHNET_BEACON_PORT; $MESHNET_BEACON_INTERFACE is applied by resolve_interface)."""
    port = os.environ.get(PORT_ENV)
    if port and port.isdigit() and 0 < int(port) < 65536:
        return discovery.model_copy(update={"port": int(port)})
    return discovery


def choose_interfaces(discovery: DiscoverySpec) -> list[Interface]:
    """The interfaces to beacon on, the primary first (see netif.resolve_interfaces)."""
    return resolve_interfaces(
        discovery.interface, discovery.group,
        discovery.include_interfaces, discovery.exclude_interfaces,
    )  # fmt: skip


async def open_beacon_sockets(
    discovery: DiscoverySpec,
    interfaces: list[Interface],
    machine: DatagramMachine,
    on_event: Callable[[Any], None],
) -> BeaconSockets:
    """Start pumping a beacon machine (its clock is the wall clock: beacons carry
    timestamps that peers check)."""
    group_sock = multicast_socket(discovery.group, discovery.port, interfaces)
    opened: list[socket.socket] = [group_sock]
    try:
        for interface in interfaces:
            opened.append(unicast_socket(interface))
    except OSError:
        for sock in opened:
            sock.close()
        raise
    pump = await open_pump(opened[1], machine, on_event, time.time)
    for interface, sock in zip(interfaces[1:], opened[2:], strict=True):
        pump.add_sender(interface, await listen_into(sock, pump))
    transport = await listen_into(group_sock, pump)
    return BeaconSockets(interfaces, pump, transport)
