"""Every plan on a real pool (two devices in network namespaces, or loopback) gives the
same greedy tokens as one device alone, and the Job's status says which plan ran."""

from __future__ import annotations

import json

import pytest
from agents import wait_for
from lan import Device, Lan
from pool_steps import TINY, inference, two_device_pool


@pytest.mark.slow
def test_every_plan_matches_one_device(lan: Lan) -> None:
    admin, member = two_device_pool(lan, TINY)
    prompt = ["--prompt", "Hello world", "--max-tokens", "10"]
    for model in (str(TINY), "demo"):
        local = inference(admin, *prompt, "--model", model, "--local")
        for plan in ("single", "tensor", "pipeline"):
            pooled = inference(member, *prompt, "--model", model, "--parallelism", plan)
            assert pooled["tokenIds"] == local["tokenIds"], (model, plan)
            assert isinstance(pooled["plan"], dict) and pooled["plan"]["kind"] == plan
            members = pooled["members"]
            assert isinstance(members, list)
            assert len(members) == (1 if plan == "single" else 2)
            if plan == "pipeline":  # the coordinator (member) is stage 0
                assert [m["layers"][0] for m in members] == [0, members[0]["layers"][1]]


def _measured(device: Device) -> bool:
    """Every peer's link and kernel speed are known on ``device``."""
    peers = json.loads(device.cli("get", "peers", "-o", "json").stdout)["items"]
    keys = ("rttSeconds", "throughputBytesPerSecond", "speedBytesPerSecond", "freeMemoryBytes")
    return bool(peers) and all(p.get(k) for p in peers for k in keys)


@pytest.mark.slow
def test_auto_plans_from_what_the_pool_measured(lan: Lan) -> None:
    admin, member = two_device_pool(lan, TINY)
    wait_for(lambda: _measured(member) and _measured(admin), 120, "links and speeds measured")
    prompt = ["--prompt", "Hello world", "--max-tokens", "10", "--model", str(TINY)]
    local = inference(admin, *prompt, "--local")
    pooled = inference(member, *prompt)
    assert pooled["tokenIds"] == local["tokenIds"]
    plan = pooled["plan"]
    assert isinstance(plan, dict) and plan["predictedTokensPerSecond"]
    assert "no measurements" not in plan["reason"] and "predicted" in plan["reason"]
    assert set(plan["alternatives"]) == {"single", "tensor", "pipeline"}
