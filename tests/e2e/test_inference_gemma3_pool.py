"""A Gemma 3 model (sliding-window layers, QK-norm, post-norms, SentencePiece) across a
real two-device pool gives the tokens one device gives alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lan import Lan
from pool_steps import two_device_pool

GEMMA3 = Path(__file__).resolve().parents[1] / "fixtures" / "models" / "tiny-gemma3.gguf"


@pytest.mark.slow
def test_gemma3_on_two_devices_matches_one_device(lan: Lan) -> None:
    admin, member = two_device_pool(lan, GEMMA3)
    args = ["inference", "-o", "json", "--prompt", "The quick brown fox jumps over"]
    args += ["--max-tokens", "12", "--model", str(GEMMA3)]
    tensor = ["--parallelism", "tensor"]
    local = json.loads(admin.cli(*args, "--local", tool="mesh", timeout=180).stdout)
    pooled = json.loads(member.cli(*args, *tensor, tool="mesh", timeout=180).stdout)
    assert len(local["tokenIds"]) == 12  # past the 4-position window of the sliding layers
    assert pooled["tokenIds"] == local["tokenIds"]
    assert pooled["text"] == local["text"]
    (a, b), (c, d) = [m["columns"] for m in pooled["members"]]  # cut by measured speed
    assert a == 0 and b == c and d == 8192 and 0 < b < 8192
