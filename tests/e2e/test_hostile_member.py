"""A member whose valid certificate is in hostile hands attacks real agents in their
namespaces through gossip (security review, finding 1 and 7). The pool's ring, its
members and its store come through unchanged."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any

from agents import wait_for
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

EXPECTED_DROPS = {
    "incarnation near the 32-bit limit",
    "leave not sent by its subject",
    "too many unconfirmed members",
    "implausible memory size",
    "ring epoch too large",
    "invalid revocation entry",
}


def peers(device: Device) -> dict[str, dict[str, Any]]:
    return {p["nodeId"]: p for p in observed(device, "peers/test-pool") or []}


def gossip_drops(device: Device, expected: set[str]) -> dict[str, int] | None:
    drops = (observed(device, "beacons/test-pool") or {}).get("gossipDrops", {})
    return drops if set(drops) >= expected else None


def test_a_member_with_a_stolen_certificate_changes_nothing(lan: Lan) -> None:
    admin, m1, m2, evil = (lan.add(n) for n in ("admin", "m1", "m2", "evil"))
    pool = start_admin(admin)
    for device in (m1, m2, evil):
        request_join(device, pool, make_token(admin))
    for device in (m1, m2, evil):
        wait_joined(device)
    wait_for(partial(ring_of, admin, 4), 40, "ring of 4")
    evil.processes[-1].kill()  # from now on its certificate is only used by the attacker
    honest = (admin, m1, m2)
    before = {d.name: wait_for(partial(ring_of, d, 3), 30, "ring of 3") for d in honest}
    seen_before = {d.name: peers(d) for d in honest}
    targets = [
        {"nodeId": node_id(m1), "address": peers(admin)[node_id(m1)]["address"]},
        {"nodeId": node_id(m2), "address": peers(admin)[node_id(m2)]["address"]},
        {"nodeId": node_id(admin), "address": peers(m1)[node_id(admin)]["address"]},
    ]

    script = str(Path(__file__).parent / "hostile_member.py")
    command = [*evil.prefix(), sys.executable, script, str(evil.home.root), "test-pool",
               json.dumps(targets)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=evil.env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("sent ")

    for device in honest:  # m2 hears the forged leave about itself: it just outbids it
        expected = EXPECTED_DROPS - ({"leave not sent by its subject"} if device is m2 else set())
        refused = lambda d=device, e=expected: gossip_drops(d, e)  # noqa: E731
        wait_for(refused, 30, f"{device.name} refused the attacks")
    ids = {node_id(d) for d in honest}
    for device in honest:
        ring = ring_of(device, 3)
        assert ring is not None and ring["hash"] == before[device.name]["hash"]
        now = peers(device)
        assert set(now) <= ids | {node_id(evil)}, "ghost members entered the table"
        for peer_id, row in now.items():
            if peer_id in ids:
                assert row["status"] == "ONLINE", (device.name, row)
                assert row["incarnation"] < 2**31
                assert row["memoryBytes"] == seen_before[device.name][peer_id]["memoryBytes"]
        assert device.processes[-1].proc.poll() is None, f"{device.name} crashed"
    members = json.loads(admin.cli("get", "members", "-o", "json").stdout)
    assert {"m1", "m2", "evil"} <= {m["metadata"]["name"] for m in members["items"]}
