"""A Gemma 3 model (sliding-window layers, QK-norm, post-norms, SentencePiece) across a
real two-device pool gives the tokens one device gives alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from agents import wait_for
from lan import Lan
from pool_steps import make_token, request_join, ring_of, start_admin, wait_joined

GEMMA3 = Path(__file__).resolve().parents[1] / "fixtures" / "models" / "tiny-gemma3.gguf"


@pytest.mark.slow
def test_gemma3_on_two_devices_matches_one_device(lan: Lan) -> None:
    admin, member = lan.add("device1"), lan.add("device2")
    for device in (admin, member):
        device.extra_env = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
        device.keep_model(GEMMA3)  # peers name models, never paths
    pool = start_admin(admin)
    request_join(member, pool, make_token(admin))
    wait_joined(member)
    for device in (admin, member):
        wait_for(lambda d=device: ring_of(d, 2), 30, "ring of 2")
    args = ["inference", "-o", "json", "--prompt", "The quick brown fox jumps over"]
    args += ["--max-tokens", "12", "--model", str(GEMMA3)]
    local = json.loads(admin.cli(*args, "--local", tool="mesh", timeout=180).stdout)
    pooled = json.loads(member.cli(*args, tool="mesh", timeout=180).stdout)
    assert len(local["tokenIds"]) == 12  # past the 4-position window of the sliding layers
    assert pooled["tokenIds"] == local["tokenIds"]
    assert pooled["text"] == local["text"]
    assert [m["columns"] for m in pooled["members"]] == [[0, 4096], [4096, 8192]]
