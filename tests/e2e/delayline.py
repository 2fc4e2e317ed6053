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
to the bridges (:func:`start_delay_line` does all of it). A line ``delay MS`` on its
standard input changes the one-way delay from then on (:meth:`DelayLine.set_delay`, for
benches that sweep delays without re-forming a pool); frames already in flight keep theirs.
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


@dataclass
class Setting:
    """What the pumps read at each frame: the one-way delay (s) and the loss probability."""

    delay_s: float
    loss: float


def _pump(
    loop: asyncio.AbstractEventLoop,
    source: int,
    sink: int,
    setting: Setting,
    rng: random.Random,
    counters: Counters,
) -> None:
    """Read every frame waiting on ``source``; write each to ``sink`` the delay later."""
    while True:
        try:
            frame = os.read(source, MAX_FRAME)
        except BlockingIOError:
            return
        if setting.loss and rng.random() < setting.loss:
            counters.dropped += 1
            continue
        counters.forwarded += 1
        if setting.delay_s > 0:
            loop.call_later(setting.delay_s, _write, sink, frame)
        else:
            _write(sink, frame)


def _write(sink: int, frame: bytes) -> None:
    with contextlib.suppress(OSError):  # a tap gone down (teardown) loses it, as a cable would
        os.write(sink, frame)


def _command(loop: asyncio.AbstractEventLoop, setting: Setting) -> None:
    """Apply one ``delay MS`` line of standard input (anything else is ignored); at its
    end, stop listening (the delay stays)."""
    line = sys.stdin.readline()
    if not line:
        loop.remove_reader(sys.stdin.fileno())
        return
    words = line.split()
    if len(words) == 2 and words[0] == "delay":
        with contextlib.suppress(ValueError):
            setting.delay_s = max(0.0, float(words[1]) / 1000.0)
            print(f"delay {setting.delay_s * 1000.0:g}", flush=True)


async def run(tap_a: str, tap_b: str, delay_s: float, loss: float, lifetime: float) -> Counters:
    """Forward frames both ways until ``lifetime`` seconds have passed."""
    loop = asyncio.get_running_loop()
    a, b = open_tap(tap_a), open_tap(tap_b)
    rng = random.Random(0x5EED)
    counters, setting = Counters(), Setting(delay_s, loss)
    loop.add_reader(a, _pump, loop, a, b, setting, rng, counters)
    loop.add_reader(b, _pump, loop, b, a, setting, rng, counters)
    commands = not sys.stdin.isatty()
    if commands:
        loop.add_reader(sys.stdin.fileno(), _command, loop, setting)
    print("ready", flush=True)
    try:
        await asyncio.sleep(lifetime)  # the line's whole life (it stops by itself), no sync
    finally:
        if commands:
            loop.remove_reader(sys.stdin.fileno())
        loop.remove_reader(a)
        loop.remove_reader(b)
        os.close(a)
        os.close(b)
    return counters


class DelayLine:
    """A running delay line: change its delay, stop it (it also stops by itself)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process

    def set_delay(self, one_way_ms: float) -> None:
        """Every frame read from now on waits ``one_way_ms`` (acknowledged before returning)."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(f"delay {one_way_ms}\n")
        self.process.stdin.flush()
        if not self.process.stdout.readline().startswith("delay"):
            raise RuntimeError("the delay line stopped")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


def start_delay_line(
    hub: str,
    bridge_a: str,
    bridge_b: str,
    one_way_ms: float,
    loss: float = 0.0,
    lifetime: float = 900.0,
) -> subprocess.Popen[str]:
    """Start a delay line between two bridges of the hub namespace ``hub``; the caller
    stops it with ``terminate()`` (it also stops by itself after ``lifetime`` s)."""
    return open_delay_line(hub, bridge_a, bridge_b, one_way_ms, loss, lifetime).process


def open_delay_line(
    hub: str,
    bridge_a: str,
    bridge_b: str,
    one_way_ms: float,
    loss: float = 0.0,
    lifetime: float = 900.0,
) -> DelayLine:
    """Start a delay line between two bridges of the hub namespace ``hub``, its delay
    adjustable while it runs; the caller stops it with :meth:`DelayLine.stop`."""
    tap_a, tap_b = f"{hub[:9]}dA", f"{hub[:9]}dB"
    command = [
        "ip", "netns", "exec", hub, sys.executable, os.path.abspath(__file__),
        "--tap-a", tap_a, "--tap-b", tap_b, "--delay-ms", str(one_way_ms),
        "--loss", str(loss), "--lifetime", str(lifetime),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = DelayLine(process)
    assert process.stdout is not None
    if process.stdout.readline().strip() != "ready":
        line.stop()
        raise RuntimeError("the delay line did not start (needs root and /dev/net/tun)")
    try:
        for tap, bridge in ((tap_a, bridge_a), (tap_b, bridge_b)):
            subprocess.run(
                ["ip", "-n", hub, "link", "set", tap, "master", bridge, "up"],
                check=True,
                capture_output=True,
            )
    except subprocess.CalledProcessError:
        line.stop()
        raise
    return line


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
