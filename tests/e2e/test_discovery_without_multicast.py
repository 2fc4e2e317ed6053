"""Discovery where multicast does not work. The admin has two legs (two bridges, two
subnets): alice is on its second leg, where multicast works, and joins by beacon (the
admin hears beacons on every leg, not only the one the routing table picks); bob is on
the first leg, where multicast is dropped: he joins through the control plane and
meets the pool through the rendezvous (control plane and relay). All three converge;
alice and bob, on different subnets, reach each other through the relay, and
`meshctl get peers -o wide` says so."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import partial

import pytest
from agents import wait_for
from conftest import NETNS
from lan import Device, Lan
from pool_steps import (
    make_token,
    node_id,
    observed,
    request_join,
    ring_of,
    start_admin,
    wait_joined,
)

RELAY_PORT = 4001

pytestmark = pytest.mark.skipif(
    not NETNS, reason="needs network namespaces (root) to give the admin two legs"
)


def _drop_multicast(device: Device) -> None:
    for chain, flag in (("OUTPUT", "-d"), ("INPUT", "-d")):
        rule = [chain, flag, "224.0.0.0/4", "-j", "DROP"]
        subprocess.run([*device.prefix(), "iptables", "-A", *rule], check=True)


def _serve(admin: Device, module: str, *args: str) -> subprocess.Popen[bytes]:
    log = (admin.home.root / f"{module.split('.')[-2]}.out").open("wb")
    code = f"from {module} import app; app()"
    command = [*admin.prefix(), sys.executable, "-c", code, *args]
    return subprocess.Popen(command, env=admin.env(), stdout=log, stderr=subprocess.STDOUT)


def _route(device: Device, peer: str) -> str | None:
    for row in observed(device, "peers/test-pool") or []:
        if row["nodeId"] == peer and row.get("linkConnected"):
            return str(row.get("route"))
    return None


def test_a_pool_forms_across_two_legs_with_multicast_dropped_on_one(lan: Lan) -> None:
    admin = lan.add("admin")
    second_leg = lan.add_leg(admin, "br1", "10.78")
    alice, bob = lan.add("alice", "br1", "10.78"), lan.add("bob")
    pool = start_admin(admin, relays=f'"{admin.address}:{RELAY_PORT}"')
    services = [
        _serve(admin, "reconciler.relay.cli", "--port", str(RELAY_PORT)),
        _serve(admin, "reconciler.controlplane.cli", "--port", "8080"),
    ]
    try:
        port_file = admin.home.root / "control-plane.port"
        port = wait_for(lambda: port_file.exists() and port_file.read_text().strip(), 30, "cp")
        _drop_multicast(bob)
        request_join(alice, pool, make_token(admin), relays=f"{second_leg}:{RELAY_PORT}")
        request_join(bob, pool, make_token(admin), relays=f"{admin.address}:{RELAY_PORT}",
                     control_plane=f"{admin.address}:{port}")  # fmt: skip
        for device in (alice, bob):
            wait_joined(device, 60)
        rings = [
            wait_for(partial(ring_of, d, 3), 90, f"{d.name}: ring of 3")
            for d in (admin, alice, bob)
        ]
        assert len({r["hash"] for r in rings}) == 1
        bob_id = node_id(bob)
        assert wait_for(lambda: _route(alice, bob_id), 60, "alice -> bob link") == "relay"
        assert wait_for(lambda: _route(admin, bob_id), 60, "admin -> bob link") == "direct"
        wide = alice.cli("get", "peers", "-o", "wide").stdout
        assert "ROUTE" in wide and "relay" in wide
        rows = {row["nodeId"]: row for row in observed(bob, "peers/test-pool")}
        assert rows[node_id(admin)]["foundBy"] == "rendezvous"  # bob heard no beacon
        doctor = json.loads(bob.cli("doctor", "-o", "json", check=False).stdout)
        findings = [f for items in doctor["sections"].values() for f in items]
        discovery = [f["message"] for f in findings if f["topic"] == "discovery"]
        assert any("rendezvous" in m for m in discovery), discovery
    finally:
        for service in services:
            service.terminate()
            service.wait(10)
