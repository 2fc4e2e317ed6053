"""The UDP pump: runs a sans-IO datagram machine (aioquic's API) on a socket.

The machine gets `receive_datagram(data, addr, now)`, `datagrams_to_send(now)`,
`get_timer()`, `handle_timer(now)` and `next_event()`; this module owns the socket,
the event loop's timer and the clock, and hands each event to a callback.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import struct
from collections.abc import Callable, Sequence
from typing import Any, Protocol, cast

from reconciler.drivers.netif import Interface
from reconciler.drivers.timers import MachineTimer, deliver_events

log = logging.getLogger("meshnet.udp")

Addr = tuple[str, int]


class DatagramMachine(Protocol):
    def receive_datagram(self, data: bytes, addr: Addr, now: float) -> None: ...
    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Addr]]: ...
    def get_timer(self) -> float | None: ...
    def handle_timer(self, now: float) -> None: ...
    def next_event(self) -> Any: ...


def _send_multicast_on(sock: socket.socket, interface: Interface) -> None:
    """Multicast leaves by this interface, loops back to local listeners, and has TTL 0
    on loopback (it never leaves the machine) or 1 on a LAN (it never leaves the LAN)."""
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(interface.address))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 0 if interface.is_loopback else 1)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)


def _udp_socket(setup: Callable[[socket.socket], None]) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        setup(sock)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def multicast_socket(group: str, port: int, interfaces: Sequence[Interface]) -> socket.socket:
    """A UDP socket bound to the beacon port, in the group on each of the interfaces
    (those whose kernel refuses the membership are skipped; OSError if all are).

    Several agents on one host share the port (SO_REUSEPORT) and hear each other
    (multicast loop on). On loopback the TTL is 0: nothing leaves the machine.
    """

    def setup(sock: socket.socket) -> None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("", port))
        joined, errors = 0, []
        for interface in interfaces:
            group_on = struct.pack(
                "4s4s", socket.inet_aton(group), socket.inet_aton(interface.address)
            )
            try:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, group_on)
                joined += 1
            except OSError as err:
                errors.append(f"{interface.name}: {err}")
                log.warning("cannot join %s on %s: %s", group, interface.name, err)
        if not joined:
            raise OSError(f"cannot join {group} on any interface ({'; '.join(errors)})")
        _send_multicast_on(sock, interfaces[0])
        if hasattr(socket, "IP_MULTICAST_ALL"):
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_ALL, 0)

    return _udp_socket(setup)


class DatagramPump(asyncio.DatagramProtocol):
    """Feeds a socket's datagrams and the timer to a machine; sends what it says."""

    def __init__(
        self, machine: DatagramMachine, on_event: Callable[[Any], None], clock: Callable[[], float]
    ) -> None:
        self.machine = machine
        self.on_event = on_event
        self.clock = clock
        self.transport: asyncio.DatagramTransport | None = None
        self.sent = 0
        self.received = 0
        self.senders: list[tuple[Interface, asyncio.DatagramTransport]] = []
        self._timer = MachineTimer(machine, clock, self.flush)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        self.flush()

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        self.received += 1
        self.machine.receive_datagram(data, (addr[0], addr[1]), self.clock())
        self.flush()

    def error_received(self, exc: Exception) -> None:
        log.debug("socket error: %s", exc)

    def flush(self) -> None:
        """Send what the machine wants sent, deliver its events, re-arm its timer."""
        if self.transport is None:
            return
        for data, addr in self.machine.datagrams_to_send(self.clock()):
            for transport in self._routes(addr):
                try:
                    transport.sendto(data, addr)
                    self.sent += 1
                except OSError as err:
                    log.warning("cannot send to %s:%s: %s", addr[0], addr[1], err)
        deliver_events(self.machine, self.on_event, log)
        self._timer.arm()

    def add_sender(self, interface: Interface, transport: asyncio.DatagramTransport) -> None:
        """Another interface's socket: multicast goes out on every one, unicast on the
        one whose subnet holds the destination (else on the first)."""
        self.senders.append((interface, transport))

    def _routes(self, addr: Addr) -> list[asyncio.DatagramTransport]:
        assert self.transport is not None
        try:
            multicast = ipaddress.ip_address(addr[0]).is_multicast
        except ValueError:
            multicast = False
        if multicast:
            return [self.transport, *(t for _i, t in self.senders)]
        for interface, transport in self.senders:
            if interface.holds(addr[0]):
                return [transport]
        return [self.transport]

    def close(self) -> None:
        self._timer.cancel()
        for _interface, transport in self.senders:
            transport.close()
        if self.transport is not None:
            self.transport.close()


def unicast_socket(interface: Interface) -> socket.socket:
    """A socket on an ephemeral port of the interface: it sends (also to the group) and
    hears unicast answers, which a port shared by several agents could misdeliver."""

    def setup(sock: socket.socket) -> None:
        sock.bind((interface.address, 0))
        _send_multicast_on(sock, interface)

    return _udp_socket(setup)


class _Listener(asyncio.DatagramProtocol):
    """Hands a receive-only socket's datagrams to a pump."""

    def __init__(self, pump: DatagramPump) -> None:
        self.pump = pump

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        self.pump.datagram_received(data, addr)


async def listen_into(sock: socket.socket, pump: DatagramPump) -> asyncio.DatagramTransport:
    """Feed a second socket (the multicast group's) into a pump that sends elsewhere."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: _Listener(pump), sock=sock)
    return transport


async def open_pump(
    sock: socket.socket,
    machine: DatagramMachine,
    on_event: Callable[[Any], None],
    clock: Callable[[], float],
) -> DatagramPump:
    """Start pumping a bound socket."""
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_datagram_endpoint(
        lambda: DatagramPump(machine, on_event, clock), sock=sock
    )
    return protocol
