"""The two-device quick start of the README, as a test: device1.sh and device2.sh in
two network namespaces (loopback where namespaces cannot be made), then every check of
the guide, then Ctrl+C leaves no process behind."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pytest
from agents import wait_for
from lan import Lan
from quickstart import mesh, meshnet_home, peer_online, processes_of, start_quickstart, topology


@pytest.mark.slow
def test_quickstart_two_devices(lan: Lan, tmp_path: Path) -> None:
    device1, device2, first, second, info = start_quickstart(lan, tmp_path)
    try:
        pool_id = info["POOL_ID"]
        assert info["POOL_ROOT_PUBKEY"].startswith("sha256:") and info["CONTROL_PLANE"]
        for device in (device1, device2):
            ring = wait_for(partial(topology, device, pool_id, 2), 90, f"{device.name}: ring of 2")
            assert [m["position"] for m in ring["members"]] == [0, 1]
            assert [m["shard"]["end"] - m["shard"]["start"] for m in ring["members"]] == [
                4096,
                4096,
            ]
        assert topology(device1, pool_id, 2) == topology(device2, pool_id, 2)
        other = {device1.name: device2, device2.name: device1}
        for device in (device1, device2):
            peer = wait_for(partial(peer_online, device, pool_id), 30, "peer ONLINE")
            assert peer["name"] == other[device.name].name and peer["lastSeen"]
            assert peer["address"].split(":")[0] == other[device.name].address
            pools = json.loads(mesh(device, "pool-list", "-o", "json").stdout)["items"]
            assert len(pools[0]["status"]["members"]) == 2
        answer = json.loads(
            mesh(
                device2, "inference", "--prompt", "Hello world", "--max-tokens", "10", "-o", "json"
            ).stdout
        )
        assert answer["completionTokens"] == 10 and answer["text"].strip()
        # auto: the plan the pool's measurements favour (one device or both)
        used = 1 if answer["plan"]["kind"] == "single" else 2
        assert len(answer["members"]) == used
        stats = json.loads(mesh(device2, "inference-stats", "-o", "json").stdout)
        assert (stats["jobs"], stats["succeeded"], stats["tokens"]) == (1, 1, 10)
        assert len(stats["members"]) == used
        assert "1 job(s): 1 succeeded" in mesh(device2, "inference-stats").stdout
        ring = json.loads(mesh(device2, "ring-status", "--pool-id", pool_id, "-o", "json").stdout)
        assert ring["poolId"] == pool_id and ring["converged"] is True
        assert sorted(m["name"] for m in ring["members"]) == sorted([device1.name, device2.name])
        status = mesh(device2, "pool-status").stdout
        assert pool_id in status and "converged" in status
        assert device1.name in status and device2.name in status
        assert "share with device 2" in first.output()
        assert "Requesting a certificate" in second.output()
    finally:
        codes = [script.interrupt() for script in (second, first)]
    assert codes == [130, 130] or all(code in (0, 130) for code in codes), codes
    homes = [meshnet_home(d).parent for d in (device1, device2)]
    assert processes_of(homes) == []
