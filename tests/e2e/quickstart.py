"""The quick start as a user runs it: device1.sh on one device, device2.sh on another
with `.pool-info` copied across, each with its own HOME (so `~/.meshnet` is theirs).
The test environment's install is reused by putting its bin folder first on PATH: the
scripts find `mesh` there and take the same code paths as after install.sh."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
from agents import wait_for
from lan import Device, Lan

REPO = Path(__file__).resolve().parents[2]


def script_env(device: Device) -> dict[str, str]:
    env = device.env()
    env.pop("MESHNET_HOME", None)  # the scripts' default: ~/.meshnet under this HOME
    home = device.home.root / "home"
    home.mkdir(parents=True, exist_ok=True)
    env.update(HOME=str(home), PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
               OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", DEVICE_NAME=device.name)  # fmt: skip
    return env


def meshnet_home(device: Device) -> Path:
    return device.home.root / "home" / ".meshnet"


class Script:
    """A device script running like in a terminal (its own process group)."""

    def __init__(self, device: Device, script: str, workdir: Path) -> None:
        self.device = device
        workdir.mkdir(parents=True, exist_ok=True)
        self.log = workdir / f"{script}.log"
        self.started = time.time()
        self.proc = subprocess.Popen(
            [*device.prefix(), "bash", str(REPO / script)],
            cwd=workdir, env=script_env(device), stdin=subprocess.DEVNULL,
            stdout=self.log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def interrupt(self, timeout: float = 30.0) -> int:
        """Ctrl+C: SIGINT to the whole process group, as a terminal does."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def mesh(
    device: Device, *args: str, timeout: float = 180, check: bool = True
) -> subprocess.CompletedProcess[str]:
    command = [*device.prefix(), sys.executable, "-m", "reconciler.entry.mesh", *args]
    return subprocess.run(command, env=script_env(device), capture_output=True, text=True,
                          check=check, timeout=timeout)  # fmt: skip


def pool_info(workdir: Path) -> dict[str, str] | None:
    path = workdir / ".pool-info"
    if not path.exists():
        return None
    pairs = dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return pairs if "JOIN_TOKEN" in pairs else None


def topology(device: Device, pool_id: str, size: int) -> dict[str, Any] | None:
    path = meshnet_home(device) / f"ring_topology_{pool_id}.json"
    try:
        data = dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None
    return data if len(data.get("members", [])) == size else None


def peer_online(device: Device, pool_id: str) -> dict[str, Any] | None:
    result = mesh(device, "pool-peers", "--pool-id", pool_id, "-o", "json", check=False)
    if result.returncode != 0:  # the pool is not known here yet
        return None
    peers = json.loads(result.stdout)["items"]
    online = [p for p in peers if p["status"] == "ONLINE"]
    return online[0] if online else None


def processes_of(homes: list[Path]) -> list[psutil.Process]:
    """Every process whose HOME is one of the devices' homes."""
    wanted = {str(h) for h in homes}
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("HOME") in wanted:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def start_quickstart(lan: Lan, root: Path) -> tuple[Device, Device, Script, Script, dict[str, str]]:
    device1, device2 = lan.add("device1"), lan.add("device2")
    first = Script(device1, "device1.sh", root / "work1")
    info = wait_for(lambda: pool_info(root / "work1"), 60, "device1.sh wrote .pool-info")
    (root / "work2").mkdir(parents=True, exist_ok=True)
    shutil.copy(root / "work1" / ".pool-info", root / "work2" / ".pool-info")
    second = Script(device2, "device2.sh", root / "work2")
    return device1, device2, first, second, info
