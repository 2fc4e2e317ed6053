"""Pools formed by real agents: join by token, converge, crash, restart, approval,
forgers. In network namespaces on a bridge when root (else on loopback)."""

from __future__ import annotations

import signal
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any

from agents import wait_for
from lan import Device, Lan
from pool_steps import (
    get,
    make_token,
    member_phase,
    node_id,
    observed,
    peer_status,
    request_join,
    ring_of,
    start_admin,
    topology,
    wait_joined,
)


def peer_offline(device: Device, node_id: str) -> bool:
    return peer_status(device, node_id) == "OFFLINE"


def test_three_devices_join_converge_survive_a_crash_and_rejoin(lan: Lan) -> None:
    admin, m1, m2 = lan.add("device1"), lan.add("device2"), lan.add("device3")
    pool = start_admin(admin)
    pool_id = pool.status.pool_id
    assert pool_id is not None
    token = make_token(admin)
    for member in (m1, m2):
        request_join(member, pool, token)
    for member in (m1, m2):
        wait_joined(member)

    rings = [wait_for(partial(ring_of, d, 3), 30, f"{d.name} ring of 3") for d in (admin, m1, m2)]
    assert len({r["hash"] for r in rings}) == 1
    files = [wait_for(partial(topology, d, pool_id), 10, "topology file") for d in (admin, m1, m2)]
    assert files[0] == files[1] == files[2]
    assert [m["position"] for m in files[0]["members"]] == [0, 1, 2]
    assert files[0]["members"][-1]["shard"]["end"] == 8192

    crashed_id = node_id(m2)
    m2.processes[-1].kill()
    for survivor in (admin, m1):
        wait_for(partial(peer_offline, survivor, crashed_id), 20, "crash detected")
        ring = wait_for(partial(ring_of, survivor, 2), 20, "ring re-formed")
        assert crashed_id not in {m["nodeId"] for m in ring["members"]}
        assert [m["shard"] for m in ring["members"]] == [
            {"start": 0, "end": 4096},
            {"start": 4096, "end": 8192},
        ]

    m2.start_agent()  # stored certificate: no token needed again
    for device in (admin, m1, m2):
        wait_for(partial(ring_of, device, 3), 30, f"{device.name} ring of 3 again")
    assert member_phase(m2) == "Joined"
    for device in (admin, m1, m2):
        assert device.processes[-1].stop(signal.SIGTERM) == 0


def test_approval_mode_waits_for_the_admin(lan: Lan) -> None:
    admin, member = lan.add("admin"), lan.add("laptop")
    pool = start_admin(admin, admission="approve")
    request_join(member, pool, token=None)

    def pending_on_admin() -> bool:
        result = admin.cli("get", "members", "-o", "json").stdout
        return '"Pending"' in result

    wait_for(pending_on_admin, 30, "pending request on the admin")
    assert member_phase(member) == "Pending"
    from reconciler.node import load_node_config

    key = load_node_config(member.home).fingerprint  # what `mesh init` printed there
    admin.cli("certificate", "approve", "laptop", "--fingerprint", key)
    wait_joined(member)
    wait_for(partial(ring_of, member, 2), 30, "ring of 2")


def test_forger_and_stranger_change_nothing(lan: Lan) -> None:
    admin, member, stranger, forger = (
        lan.add(n) for n in ("admin", "member", "stranger", "forger")
    )
    pool = start_admin(admin)
    request_join(member, pool, make_token(admin))
    wait_joined(member)
    before = wait_for(partial(ring_of, admin, 2), 30, "ring of 2")

    request_join(stranger, pool, "abcdef.0123456789abcdef")  # a made-up token
    script = str(Path(__file__).parent / "forger.py")
    interface = forger.address
    command = [
        *forger.prefix(),
        sys.executable,
        script,
        "239.192.0.1",
        str(lan.beacon_port),
        interface,
        "20",
        admin.address,  # tamper with the admin's presence beacon, not a join request
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, env=forger.env())
    assert result.returncode == 0, result.stderr

    def dropped(device: Device) -> dict[str, int] | None:
        drops = dict((observed(device, "beacons/test-pool") or {}).get("drops", {}))
        forged = drops.get("bad_signature", 0) + drops.get("untrusted_cert", 0)
        ok = forged >= 20 and drops.get("garbage", 0) >= 20 and drops.get("truncated", 0) >= 20
        return drops if ok else None

    for device in (admin, member):
        drops = observed(device, "beacons/test-pool") or {}
        what = f"{device.name} dropped the forgeries (drops so far: {drops.get('drops')})"
        wait_for(partial(dropped, device), 15, what)
    # the forger replayed the admin's beacon: the member refuses it as a replay
    assert (dropped(member) or {}).get("replay", 0) >= 20
    wait_for(lambda: member_phase(stranger) == "Denied", 20, "stranger denied")
    ring = ring_of(admin, 2)
    assert ring is not None and ring["hash"] == before["hash"]
    assert ring_of(member, 2) is not None
    assert stranger.processes[-1].proc.poll() is None  # running, refused, never crashed
    assert admin.processes[-1].proc.poll() is None


def test_revoked_member_is_dropped_and_cannot_rejoin(lan: Lan) -> None:
    admin, keep, bad = lan.add("admin"), lan.add("keep"), lan.add("bad")
    pool = start_admin(admin)
    token = make_token(admin)
    for device in (keep, bad):
        request_join(device, pool, token)
    for device in (keep, bad):
        wait_joined(device)
    for device in (admin, keep, bad):
        wait_for(partial(ring_of, device, 3), 30, "ring of 3")
    admin.cli("member", "revoke", "bad")
    for device in (admin, keep):
        ring = wait_for(partial(ring_of, device, 2), 15, "ring without the revoked member")
        assert node_id(bad) not in {m["nodeId"] for m in ring["members"]}
    assert get(admin, "Member", "bad").status.phase == "Revoked"
    bad.processes[-1].kill()
    for path in bad.home.pool_dir("test-pool").glob("*"):
        path.unlink()
    (bad.home.pool_dir("test-pool")).rmdir()
    bad.start_agent()  # asks again with the same key and a valid token
    wait_for(lambda: member_phase(bad) == "Denied", 20, "revoked key refused")
    assert ring_of(admin, 2) is not None


def test_pool_join_reports_a_refusal_at_once(lan: Lan) -> None:
    admin, joiner = lan.add("admin"), lan.add("joiner")
    pool = start_admin(admin)
    joiner.cli("init", "--network-id", "lan", "--name", "joiner")
    assert pool.status.pool_id and pool.status.root_fingerprint
    args = ["pool-join", "--pool-id", pool.status.pool_id, "--pool-root-pubkey",
            pool.status.root_fingerprint, "--name", "test-pool", "--timeout", "30"]  # fmt: skip
    refused = joiner.cli(*args, "--token", "abcdef.0123456789abcdef", tool="mesh", check=False)
    assert refused.returncode == 1 and "refused this device: token rejected" in refused.stderr
    joined = joiner.cli(*args, "--token", make_token(admin), tool="mesh", check=False)
    assert joined.returncode == 0, joined.stderr
    assert "Joined pool test-pool" in joined.stdout


def test_memory_weighting_uses_the_members_declared_capacity(lan: Lan) -> None:
    admin, small = lan.add("admin"), lan.add("small")
    pool = start_admin(admin, weighting="memory")
    request_join(small, pool, make_token(admin), memory=1 << 30, weighting="memory")
    wait_joined(small)
    ring = wait_for(partial(ring_of, admin, 2), 30, "ring of 2")
    widths = {m["name"]: m["shard"]["end"] - m["shard"]["start"] for m in ring["members"]}
    assert sum(widths.values()) == 8192
    assert widths["small"] < widths["admin"]
    measured = wait_for(lambda: _measured_peer(admin), 40, "RTT, throughput, speed, memory")
    assert measured["rttSeconds"] > 0 and measured["speedBytesPerSecond"] > 0
    wide = admin.cli("get", "peers", "-o", "wide").stdout
    assert "THROUGHPUT" in wide and "ms" in wide and "B/s" in wide


def _measured_peer(device: Device) -> dict[str, Any] | None:
    """The first peer whose four plan figures are all measured, as published."""
    fields = ("rttSeconds", "throughputBytesPerSecond", "speedBytesPerSecond", "freeMemoryBytes")
    for peer in observed(device, "peers/test-pool") or []:
        if all(peer.get(f) for f in fields):
            return dict(peer)
    return None
