"""Membership timings with real agents: join -> certificate, start -> converged ring,
crash -> re-formed ring, for N = 2 and 3 devices. In network namespaces when run as
root (else on loopback). Figures come from the agents' own log timestamps.

    python bench/membership.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from datetime import datetime
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "e2e"))

from agents import WATCHED, wait_for
from lan import Device, Lan, netns_available
from pool_steps import make_token, request_join, ring_of, start_admin, wait_joined

STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def log_times(device: Device, pattern: str) -> list[float]:
    """Wall-clock times of the agent log lines matching a pattern."""
    times = []
    for line in device.home.log_file("agent").read_text().splitlines():
        match = STAMP.match(line)
        if match and re.search(pattern, line):
            moment = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f")
            times.append(moment.timestamp())
    return times


def one_round(n: int, use_netns: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="meshnet-bench-") as root:
        lan = Lan(Path(root), use_netns)
        WATCHED[:] = [Path(root)]  # wait_for wakes on what the agents write there
        try:
            devices = [lan.add(f"device{i + 1}") for i in range(n)]
            admin, members = devices[0], devices[1:]
            pool = start_admin(admin)
            token = make_token(admin)
            for member in members:
                request_join(member, pool, token)
            for member in members:
                wait_joined(member)
            for device in devices:
                wait_for(partial(ring_of, device, n), 30, "ring")
            join = [
                log_times(m, "joined pool")[0] - log_times(m, "asking to join")[0] for m in members
            ]
            last_start = max(log_times(d, "agent started")[-1] for d in devices)
            converged = max(log_times(d, f"ring converged: .* {n} members")[-1] for d in devices)
            crashed = members[-1]
            killed_at = time.time()
            crashed.processes[-1].kill()
            survivors = devices[:-1]
            for device in survivors:
                wait_for(partial(ring_of, device, n - 1), 30, "re-formed ring")
            reformed = max(
                log_times(d, f"ring converged: .* {n - 1} members?")[-1] for d in survivors
            )
            return {
                "join": max(join),
                "converge": converged - last_start,
                "reform": reformed - killed_at,
            }
        finally:
            lan.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    use_netns = netns_available()
    where = "network namespaces" if use_netns else "loopback"
    print(f"membership timings, real agents in {where}, {args.rounds} rounds (median / max):")
    targets = {"join": 1.0, "converge": 2.0, "reform": 3.0}
    labels = {
        "join": "join request -> certificate stored",
        "converge": "last device started -> ring converged on all",
        "reform": "member crash (kill -9) -> ring re-formed",
    }
    for n in (2, 3):
        rounds = [one_round(n, use_netns) for _ in range(args.rounds)]
        for key, label in labels.items():
            values = [r[key] for r in rounds]
            print(f"  N={n} {label:46s} {statistics.median(values):6.2f} s / {max(values):6.2f} s"
                  f"   (target <= {targets[key]:.0f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
