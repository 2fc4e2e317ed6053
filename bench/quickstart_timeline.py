"""The quick start's timeline, measured: device 2 start -> certificate -> peers ONLINE
-> ring converged -> first token, beside the original guide's (device 2 at T+10 s,
certificate T+15 s, peers T+20 s, ring T+40 s). Runs device1.sh and device2.sh in
network namespaces (as root; loopback otherwise).

    python bench/quickstart_timeline.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "e2e"))

from agents import WATCHED, wait_for
from lan import Lan, netns_available
from quickstart import mesh, meshnet_home, peer_online, start_quickstart, topology

ORIGINAL = {"certificate": 5.0, "peers ONLINE": 10.0, "ring converged": 30.0}


def one_round(use_netns: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="meshnet-qs-") as tmp:
        root = Path(tmp)
        lan = Lan(root, use_netns)
        WATCHED[:] = [root]  # wait_for wakes on what the agents write there
        scripts = []
        try:
            _device1, device2, first, second, info = start_quickstart(lan, root)
            scripts = [second, first]
            pool_id, start = info["POOL_ID"], second.started
            cert = meshnet_home(device2) / "pools" / "test-pool" / "member.crt"
            wait_for(cert.exists, 90, "certificate")
            certificate = cert.stat().st_mtime
            wait_for(lambda: peer_online(device2, pool_id), 90, "peer ONLINE")
            peers = time.time()
            wait_for(lambda: topology(device2, pool_id, 2), 90, "ring")
            ring = (meshnet_home(device2) / f"ring_topology_{pool_id}.json").stat().st_mtime
            asked = time.time()
            answer = json.loads(mesh(device2, "inference", "--prompt", "Hello world", "--max-tokens", "10",
                                     "-o", "json").stdout)  # fmt: skip
            done = time.time()
            decode = (answer["completionTokens"] - 1) / (answer["tokensPerSecond"] or 1.0)
            return {
                "certificate": certificate - start,
                "peers ONLINE": peers - start,
                "ring converged": ring - start,
                "first token": max(ring, asked + (done - asked) - decode) - start,
            }
        finally:
            for script in scripts:
                script.interrupt()
            lan.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    use_netns = netns_available()
    rounds = [one_round(use_netns) for _ in range(args.rounds)]
    where = "network namespaces" if use_netns else "loopback"
    print(f"quick start timeline ({where}, {args.rounds} rounds), seconds after device 2 starts:")
    print(f"  {'step':16s} {'meshnet (median)':>18s} {'original guide':>16s}")
    for step in rounds[0]:
        measured = statistics.median(r[step] for r in rounds)
        original = f"+{ORIGINAL[step]:.0f} s" if step in ORIGINAL else "-"
        print(f"  {step:16s} {measured:16.2f} s {original:>16s}")
    print("  (first token includes loading each member's slices of the demo model)")


if __name__ == "__main__":
    main()
