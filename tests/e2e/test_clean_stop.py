"""Ctrl+C ends the agent's log cleanly: a line saying it stopped, no traceback (neither
"Exception in callback ... CancelledError" while stopping, nor a KeyboardInterrupt
while the command is still starting)."""

from __future__ import annotations

import signal
import subprocess
import sys
from functools import partial
from pathlib import Path

import psutil
from agents import wait_for
from lan import Device, Lan
from pool_steps import make_token, request_join, ring_of, start_admin, wait_joined

TINY = Path(__file__).resolve().parents[1] / "fixtures" / "models" / "tiny-llama.gguf"
NOISE = ("Traceback", "Exception in callback", "CancelledError", "KeyboardInterrupt")


def noise_in(text: str) -> list[str]:
    return [line for line in text.splitlines() if any(word in line for word in NOISE)]


def agent_texts(device: Device) -> str:
    outputs = [agent.output() for agent in device.processes]
    return "\n".join([*outputs, device.home.log_file("agent").read_text(errors="replace")])


def test_ctrl_c_on_a_two_member_pool_after_a_job(lan: Lan) -> None:
    admin, member = lan.add("device1"), lan.add("device2")
    for device in (admin, member):
        device.keep_model(TINY)  # peers name models, never paths
    pool = start_admin(admin)
    request_join(member, pool, make_token(admin))
    wait_joined(member)
    for device in (admin, member):
        wait_for(partial(ring_of, device, 2), 30, "ring of 2")
    admin.cli("inference", "--model", str(TINY), "--prompt", "hi", "--max-tokens", "3", tool="mesh")
    codes = [device.processes[-1].stop(signal.SIGINT, timeout=30) for device in (member, admin)]
    assert all(code in (0, 130) for code in codes), codes
    for device in (admin, member):
        text = agent_texts(device)
        assert "received SIGINT, stopping" in text and "agent stopped" in text
        assert noise_in(text) == [], device.name


def started_importing(pid: int) -> bool:
    """The command is past the interpreter's own start (its first extension module is mapped)."""
    try:
        return any("pydantic_core" in m.path for m in psutil.Process(pid).memory_maps())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return True


def test_ctrl_c_while_the_agent_is_starting(tmp_path: Path, home: object) -> None:
    log = tmp_path / "agent.out"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "reconciler.entry", "agent"], stdout=out,
                                   stderr=subprocess.STDOUT)  # fmt: skip
        # memory maps change without a file event: a 10 ms recheck catches the start window
        wait_for(lambda: started_importing(process.pid), 30, "the command importing", 0.01)
        process.send_signal(signal.SIGINT)
        code = process.wait(30)
    assert code in (0, 130, -signal.SIGINT), code
    assert noise_in(log.read_text(errors="replace")) == []
