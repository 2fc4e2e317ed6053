"""`mesh demo`, the README's first command, end to end (on loopback, with a tiny model
so that it is quick; the demo model runs in test_inference_pool)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil

TINY = Path(__file__).resolve().parents[1] / "fixtures" / "models" / "tiny-llama.gguf"


def demo_agents(since: float) -> list[int]:
    """Agent processes started by a demo since then (their home is a demo folder)."""
    found = []
    for process in psutil.process_iter(["pid", "create_time"]):
        try:
            if process.info["create_time"] >= since and "meshnet-demo-" in process.environ().get(
                "MESHNET_HOME", ""
            ):
                found.append(process.info["pid"])
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def test_demo_runs_a_two_member_pool_and_stops_everything() -> None:
    started = time.time() - 1
    result = subprocess.run(
        [sys.executable, "-m", "reconciler.entry.mesh", "demo", "--model", str(TINY), "--max-tokens", "5"],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "the ring converged on both devices" in out
    assert "0-4096" in out and "4096-8192" in out
    assert "5 tokens" in out
    assert "Stopped everything the demo started." in out
    assert demo_agents(started) == []
