"""A hostile device: hears one genuine beacon, then sends replays, tampered copies,
garbage and truncations to the group. Run inside a test namespace (or on loopback).

    python forger.py GROUP PORT INTERFACE_IP COUNT
"""

from __future__ import annotations

import os
import socket
import struct
import sys


def main() -> None:
    group, port, interface, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    source = sys.argv[5] if len(sys.argv) > 5 else None  # copy only a beacon from this address
    listen = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listen.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listen.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listen.bind(("", port))
    membership = struct.pack("4s4s", socket.inet_aton(group), socket.inet_aton(interface))
    listen.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
    listen.settimeout(30)
    genuine, sender = listen.recvfrom(2048)
    while source is not None and sender[0] != source:
        genuine, sender = listen.recvfrom(2048)
    send = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    send.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(interface))
    send.setsockopt(
        socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 0 if interface.startswith("127.") else 1
    )
    send.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
    tampered = bytearray(genuine)
    tampered[len(tampered) // 2] ^= 0x40
    for _ in range(count):
        for datagram in (genuine, bytes(tampered), os.urandom(300), genuine[:40], b""):
            send.sendto(datagram, (group, port))
    print("sent", count * 5, flush=True)


if __name__ == "__main__":
    main()
