"""Discovery timings where multicast does not work (network namespaces, as root).

The admin has two legs (two bridges, two subnets); alice is on the second leg, where
multicast works, and joins by beacon; bob is on the first, where multicast is dropped
(iptables in his namespace), and joins through the control plane, then meets the pool
through the rendezvous (control plane and relay). Figures come from the agents' own
log timestamps; medians over the rounds. (bob's join includes the 5 s the agent waits
for a beacon answer before it asks the control plane.)

    python bench/discovery.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "e2e"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from agents import WATCHED, wait_for
from lan import Device, Lan, netns_available
from membership import log_times
from pool_steps import make_token, request_join, ring_of, start_admin, wait_joined

RELAY_PORT = 4001


def _serve(admin: Device, module: str, *args: str) -> subprocess.Popen[bytes]:
    log = (admin.home.root / f"{module.split('.')[-2]}.out").open("wb")
    command = [*admin.prefix(), sys.executable, "-c", f"from {module} import app; app()", *args]
    return subprocess.Popen(command, env=admin.env(), stdout=log, stderr=subprocess.STDOUT)


def one_round() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="meshnet-bench-") as root:
        lan = Lan(Path(root), True)
        WATCHED[:] = [Path(root)]  # wait_for wakes on what the agents write there
        services: list[subprocess.Popen[bytes]] = []
        try:
            admin = lan.add("admin")
            second = lan.add_leg(admin, "br1", "10.78")
            alice, bob = lan.add("alice", "br1", "10.78"), lan.add("bob")
            pool = start_admin(admin, relays=f'"{admin.address}:{RELAY_PORT}"')
            services = [_serve(admin, "reconciler.relay.cli", "--port", str(RELAY_PORT)),
                        _serve(admin, "reconciler.controlplane.cli", "--port", "8080")]  # fmt: skip
            port_file = admin.home.root / "control-plane.port"
            port = wait_for(lambda: port_file.exists() and port_file.read_text().strip(), 30)
            for chain in ("OUTPUT", "INPUT"):
                rule = [chain, "-d", "224.0.0.0/4", "-j", "DROP"]
                subprocess.run([*bob.prefix(), "iptables", "-A", *rule], check=True)
            request_join(alice, pool, make_token(admin), relays=f"{second}:{RELAY_PORT}")
            request_join(bob, pool, make_token(admin), relays=f"{admin.address}:{RELAY_PORT}",
                         control_plane=f"{admin.address}:{port}")  # fmt: skip
            for device in (alice, bob):
                wait_joined(device, 60)
            for device in (admin, alice, bob):
                wait_for(partial(ring_of, device, 3), 90, "ring")
            figures = {}
            for member in (alice, bob):
                asked = log_times(member, "asking to join")[0]
                figures[f"{member.name} join"] = log_times(member, "joined pool")[0] - asked
            bob_joined = log_times(bob, "joined pool")[0]
            converged = [
                log_times(d, "ring converged: .* 3 members")[0] for d in (admin, alice, bob)
            ]
            figures["bob joined -> ring of 3 on all"] = max(converged) - bob_joined
            return figures
        finally:
            for service in services:
                service.terminate()
                service.wait(10)
            lan.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    if not netns_available():
        raise SystemExit("needs network namespaces (root)")
    results = [one_round() for _ in range(rounds)]
    for key in results[0]:
        values = [r[key] for r in results]
        shown = ", ".join(f"{v:.1f}" for v in values)
        print(f"{key:31s} median {statistics.median(values):5.1f} s  ({shown})")


if __name__ == "__main__":
    main()
