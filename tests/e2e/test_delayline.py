"""The layer-2 delay line joins two bridges: frames cross it, never sooner than the delay."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import NETNS
from delayline import open_delay_line, start_delay_line
from lan import Device, Lan

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(not NETNS, reason="needs root and network namespaces"),
]

ECHO_SERVER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 47001)); s.settimeout(20)
print("up", flush=True)
for _ in range(int(sys.argv[1])):
    data, peer = s.recvfrom(100)
    s.sendto(data, peer)
"""
ECHO_CLIENT = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(float(sys.argv[3]))
best = None
for i in range(int(sys.argv[2])):
    t = time.monotonic()
    s.sendto(b"x", (sys.argv[1], 47001))
    try:
        s.recvfrom(100)
    except TimeoutError:
        print("lost"); continue
    rtt = time.monotonic() - t
    best = rtt if best is None else min(best, rtt)
print("best", best)
"""


def _echo(lan: Lan, a: Device, b: Device, count: int, timeout: float) -> str:
    assert a.netns and b.netns
    server = subprocess.Popen(
        ["ip", "netns", "exec", b.netns, sys.executable, "-c", ECHO_SERVER, str(count)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "up"
        out = subprocess.run(
            ["ip", "netns", "exec", a.netns, sys.executable, "-c", ECHO_CLIENT, b.address, str(count), str(timeout)],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
    finally:
        server.kill()
        server.wait()
    return out


def test_frames_cross_the_line_no_sooner_than_the_delay(lan: Lan) -> None:
    a, b = lan.add("a", bridge="br0"), lan.add("b", bridge="br1")
    assert lan.hub is not None
    line = start_delay_line(lan.hub, "br0", "br1", one_way_ms=15.0)
    try:
        out = _echo(lan, a, b, count=5, timeout=5.0)
    finally:
        line.terminate()
        line.wait()
    best = float(out.split("best")[1])
    assert best >= 0.030  # two crossings of 15 ms each, ARP aside: a lower bound only


def test_a_line_that_drops_everything_parts_the_segments(lan: Lan) -> None:
    a, b = lan.add("a", bridge="br0"), lan.add("b", bridge="br1")
    assert lan.hub is not None
    line = start_delay_line(lan.hub, "br0", "br1", one_way_ms=1.0, loss=1.0)
    try:
        out = _echo(lan, a, b, count=2, timeout=0.5)
    finally:
        line.terminate()
        line.wait()
    assert out.count("lost") == 2
    assert "best None" in out


def test_a_new_delay_holds_for_the_frames_after_it(lan: Lan) -> None:
    a, b = lan.add("a", bridge="br0"), lan.add("b", bridge="br1")
    assert lan.hub is not None
    line = open_delay_line(lan.hub, "br0", "br1", one_way_ms=0.0)
    try:
        line.set_delay(15.0)
        out = _echo(lan, a, b, count=3, timeout=5.0)
    finally:
        line.stop()
    best = float(out.split("best")[1])
    assert best >= 0.030  # started with no delay: the new one is what every frame waited
