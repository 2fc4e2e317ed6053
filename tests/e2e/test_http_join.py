"""Joining through the control plane when beacons cannot get through: a member whose
UDP is dropped in its namespace joins over HTTPS (pinned root, token proof)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from agents import wait_for
from conftest import NETNS
from lan import Device, Lan
from pool_steps import make_token, member_phase, request_join, start_admin

pytestmark = pytest.mark.skipif(
    not NETNS, reason="needs network namespaces (root) to drop multicast"
)


def _drop_udp(device: Device) -> None:
    for chain in ("OUTPUT", "INPUT"):
        subprocess.run(
            [*device.prefix(), "iptables", "-A", chain, "-p", "udp", "-j", "DROP"], check=True
        )


def _start_control_plane(admin: Device) -> subprocess.Popen[bytes]:
    log = (admin.home.root / "control-plane.out").open("wb")
    command = [*admin.prefix(), sys.executable, "-c", "from reconciler.controlplane.cli import app; app()",
               "--port", "8080"]  # fmt: skip
    return subprocess.Popen(command, env=admin.env(), stdout=log, stderr=subprocess.STDOUT)


def test_member_without_multicast_joins_through_the_control_plane(lan: Lan) -> None:
    admin, member = lan.add("admin"), lan.add("nomcast")
    pool = start_admin(admin)
    control_plane = _start_control_plane(admin)
    try:
        port_file = admin.home.root / "control-plane.port"
        port = wait_for(
            lambda: port_file.exists() and port_file.read_text().strip(), 20, "control plane port"
        )
        _drop_udp(member)
        request_join(member, pool, make_token(admin), control_plane=f"{admin.address}:{port}")
        wait_for(lambda: member_phase(member) == "Joined", 40, "joined over HTTP")
        events = member.cli("events", "-o", "json").stdout
        assert "through the control plane" in events
        records = admin.cli("get", "members", "-o", "json").stdout
        assert '"Joined"' in records
    finally:
        control_plane.terminate()
        control_plane.wait(10)
