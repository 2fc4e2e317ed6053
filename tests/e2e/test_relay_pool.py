"""Two members that cannot reach each other directly (TCP between them dropped inside
their namespaces) still form one ring and run a job, through the admin's relay; when
the network heals, their link goes back to direct."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
from agents import wait_for
from conftest import NETNS
from lan import Device, Lan
from pool_steps import make_token, observed, request_join, ring_of, start_admin, wait_joined

TINY = Path(__file__).resolve().parents[1] / "fixtures" / "models" / "tiny-llama.gguf"
RELAY_PORT = 4001

pytestmark = pytest.mark.skipif(
    not NETNS, reason="needs network namespaces (root): loopback cannot block TCP"
)


def _block_tcp(device: Device, other: Device, action: str = "-A") -> None:
    """Drop TCP between two devices inside one's namespace (-A adds the rules, -D removes)."""
    for chain, flag in (("OUTPUT", "-d"), ("INPUT", "-s")):
        rule = [chain, flag, other.address, "-p", "tcp", "-j", "DROP"]
        subprocess.run(
            [*device.prefix(), "iptables", action, *rule], check=True, capture_output=True
        )


def _start_relay(admin: Device) -> subprocess.Popen[bytes]:
    log = (admin.home.root / "relay.out").open("wb")
    command = [*admin.prefix(), sys.executable, "-c", "from reconciler.relay.cli import app; app()",
               "--port", str(RELAY_PORT)]  # fmt: skip
    return subprocess.Popen(command, env=admin.env(), stdout=log, stderr=subprocess.STDOUT)


def _route(device: Device, node_id: str) -> str | None:
    for peer in observed(device, "peers/test-pool") or []:
        if peer["nodeId"] == node_id and peer.get("linkConnected"):
            return str(peer.get("route"))
    return None


def test_blocked_members_converge_and_compute_through_the_relay(lan: Lan) -> None:
    admin, a, b = lan.add("admin"), lan.add("alice"), lan.add("bob")
    for device in (admin, a, b):  # exact activations: the pool gives --local's tokens
        device.extra_env = {"OPENBLAS_NUM_THREADS": "1", "MESHNET_ACTIVATIONS": "exact"}
    relay_address = f"{admin.address}:{RELAY_PORT}"
    pool = start_admin(admin, relays=f'"{relay_address}"')
    relay = _start_relay(admin)
    try:
        token = make_token(admin)
        _block_tcp(a, b)
        _block_tcp(b, a)
        for device in (a, b):
            request_join(device, pool, token, relays=relay_address)
        for device in (admin, a, b):  # peers name models; each keeps its own copy
            (device.home.root / "models").mkdir(parents=True, exist_ok=True)
            (device.home.root / "models" / TINY.name).symlink_to(TINY)
        for device in (a, b):
            wait_joined(device)
        rings = [
            wait_for(partial(ring_of, d, 3), 60, f"{d.name}: ring of 3") for d in (admin, a, b)
        ]
        assert len({r["hash"] for r in rings}) == 1
        b_id = json.loads((b.home.root / "node.json").read_text())["node_id"]
        assert wait_for(lambda: _route(a, b_id), 30, "alice -> bob link") == "relay"
        result = a.cli("inference", "-o", "json", "--prompt", "hello", "--max-tokens", "5",
                       "--model", str(TINY), tool="mesh", timeout=120)  # fmt: skip
        local = a.cli("inference", "-o", "json", "--prompt", "hello", "--max-tokens", "5",
                      "--model", str(TINY), "--local", tool="mesh", timeout=120)  # fmt: skip
        assert json.loads(result.stdout)["tokenIds"] == json.loads(local.stdout)["tokenIds"]
        _block_tcp(a, b, "-D")  # the network heals: the link goes back to direct
        _block_tcp(b, a, "-D")
        assert wait_for(lambda: _route(a, b_id) == "direct", 30, "back to direct")
    finally:
        relay.terminate()
        relay.wait(10)
