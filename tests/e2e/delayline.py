"""A layer-2 delay line: two tap devices in a test's hub namespace, each on its own bridge,
with every Ethernet frame copied from one to the other after a fixed one-way delay (and,
optionally, dropped with a seeded probability).

This kernel has no netem qdisc. Because the line forwards whole frames, ARP, multicast
beacons and TCP all cross it unchanged, only later: devices on ``br0`` and ``br1`` of a
:class:`lan.Lan` behave as if joined by a slow cable. It runs as its own process inside
the hub namespace (``ip netns exec HUB python delayline.py ...``), so it only ever
touches the namespaces the test made, and it stops by itself after ``--lifetime`` s.

    python delayline.py --tap-a dlA --tap-b dlB --delay-ms 2.5 [--loss 0.01] [--lifetime 600]

It creates the two taps, prints ``ready`` once both are open, and the caller attaches them
to the bridges (:func:`start_delay_line` does all of it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import os
import random
import struct
import subprocess
import sys
from dataclasses import dataclass

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
MAX_FRAME = 65536


def open_tap(name: str) -> int:
    """A non-blocking file descriptor of a new tap device ``name`` (frames without header)."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
    return fd


@dataclass
class Counters:
    forwarded: int = 0
    dropped: int = 0


def _pump(
    loop: asyncio.AbstractEventLoop,
    source: int,
    sink: int,
    delay_s: float,
    loss: float,
    rng: random.Random,
    counters: Counters,
) -> None:
    """Read every frame waiting on ``source``; write each to ``sink`` ``delay_s`` later."""
    while True:
        try:
            frame = os.read(source, MAX_FRAME)
        except BlockingIOError:
            return
        if loss and rng.random() < loss:
            counters.dropped += 1
            continue
        counters.forwarded += 1
        loop.call_later(delay_s, _write, sink, frame)


def _write(sink: int, frame: bytes) -> None:
    with contextlib.suppress(OSError):  # a tap gone down (teardown) loses it, as a cable would
        os.write(sink, frame)


async def run(tap_a: str, tap_b: str, delay_s: float, loss: float, lifetime: float) -> Counters:
    """Forward frames both ways until ``lifetime`` seconds have passed."""
    loop = asyncio.get_running_loop()
    a, b = open_tap(tap_a), open_tap(tap_b)
    rng = random.Random(0x5EED)
    counters = Counters()
    loop.add_reader(a, _pump, loop, a, b, delay_s, loss, rng, counters)
    loop.add_reader(b, _pump, loop, b, a, delay_s, loss, rng, counters)
    print("ready", flush=True)
    try:
        await asyncio.sleep(lifetime)
    finally:
        loop.remove_reader(a)
        loop.remove_reader(b)
        os.close(a)
        os.close(b)
    return counters


def start_delay_line(
    hub: str, bridge_a: str, bridge_b: str, one_way_ms: float, loss: float = 0.0, lifetime: float = 900.0
) -> subprocess.Popen[str]:
    """Start a delay line between two bridges of the hub namespace ``hub``; the caller
    stops it with ``terminate()`` (it also stops by itself after ``lifetime`` s)."""
    tap_a, tap_b = f"{hub[:9]}dA", f"{hub[:9]}dB"
    command = [
        "ip", "netns", "exec", hub, sys.executable, os.path.abspath(__file__),
        "--tap-a", tap_a, "--tap-b", tap_b, "--delay-ms", str(one_way_ms),
        "--loss", str(loss), "--lifetime", str(lifetime),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    if process.stdout.readline().strip() != "ready":
        process.kill()
        raise RuntimeError("the delay line did not start (needs root and /dev/net/tun)")
    for tap, bridge in ((tap_a, bridge_a), (tap_b, bridge_b)):
        subprocess.run(
            ["ip", "-n", hub, "link", "set", tap, "master", bridge, "up"],
            check=True,
            capture_output=True,
        )
    return process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tap-a", required=True)
    parser.add_argument("--tap-b", required=True)
    parser.add_argument("--delay-ms", type=float, required=True, help="one-way delay")
    parser.add_argument("--loss", type=float, default=0.0, help="drop probability per frame")
    parser.add_argument("--lifetime", type=float, default=900.0, help="stop after this many s")
    args = parser.parse_args()
    try:
        counters = asyncio.run(
            run(args.tap_a, args.tap_b, args.delay_ms / 1000.0, args.loss, args.lifetime)
        )
    except KeyboardInterrupt:
        return
    print(f"forwarded {counters.forwarded} dropped {counters.dropped}", flush=True)


if __name__ == "__main__":
    main()
