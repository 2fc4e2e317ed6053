"""Several devices on one machine: network namespaces on a bridge (as root), or
loopback with distinct homes and a private beacon port (elsewhere, marked so).

Everything a LAN makes it removes: agents (by PID), namespaces, links.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from agents import AgentProcess

from reconciler.home import Home


def netns_available() -> bool:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    probe = f"mnprobe{secrets.token_hex(3)}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode == 0
    if made:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return made


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@dataclass
class Device:
    """One simulated device: a home, maybe a namespace, and the processes it runs."""

    name: str
    home: Home
    netns: str | None
    address: str
    beacon_port: int
    processes: list[AgentProcess] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)  # for its agents and CLI calls

    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            **self.extra_env,
            "MESHNET_HOME": str(self.home.root),
            "MESHNET_BEACON_PORT": str(self.beacon_port),
        }
        if self.netns is None:
            env["MESHNET_BEACON_INTERFACE"] = "127.0.0.1"
        else:
            env.pop("MESHNET_BEACON_INTERFACE", None)
        return env

    def keep_model(self, model: Path) -> None:
        """Put a model where peers may name it (MESHNET_HOME/models; never a path)."""
        models = self.home.root / "models"
        models.mkdir(parents=True, exist_ok=True)
        if not (models / model.name).exists():
            (models / model.name).symlink_to(model)

    def prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.netns] if self.netns else []

    def cli(
        self, *args: str, tool: str = "meshctl", check: bool = True, timeout: float = 90
    ) -> subprocess.CompletedProcess[str]:
        module = "reconciler.entry" if tool == "meshctl" else "reconciler.entry.mesh"
        command = [*self.prefix(), sys.executable, "-m", module, *args]
        return subprocess.run(
            command, env=self.env(), capture_output=True, text=True, check=check, timeout=timeout
        )

    def start_agent(self, *extra: str) -> AgentProcess:
        agent = AgentProcess(self.home, *extra, prefix=self.prefix(), env=self.env())
        self.processes.append(agent)
        return agent


class Lan:
    """A bridge with devices on it."""

    def __init__(self, root: Path, use_netns: bool) -> None:
        self.root = root
        self.use_netns = use_netns
        self.tag = secrets.token_hex(2)
        self.hub = f"mn{self.tag}hub" if use_netns else None
        self.devices: list[Device] = []
        self.beacon_port = 43000 + secrets.randbelow(2000)
        if self.hub is not None:
            _ip("netns", "add", self.hub)
            _ip("-n", self.hub, "link", "set", "lo", "up")
            for bridge in ("br0", "br1"):
                _ip("-n", self.hub, "link", "add", bridge, "type", "bridge", "mcast_snooping", "0")
                _ip("-n", self.hub, "link", "set", bridge, "up")

    def add(self, name: str, bridge: str = "br0", network: str = "10.77") -> Device:
        """A device with one leg on `bridge`, at `network`.<lan>.<index>/24."""
        index = len(self.devices) + 1
        home = Home(self.root / name)
        if self.hub is None:
            device = Device(name, home, None, "127.0.0.1", self.beacon_port)
        else:
            netns = f"mn{self.tag}d{index}"
            hub_end = f"mn{self.tag}v{index}"
            address = f"{network}.{self.beacon_port % 200}.{index}"
            _ip("netns", "add", netns)
            _ip(
                "link",
                "add",
                hub_end,
                "netns",
                self.hub,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                netns,
            )
            _ip("-n", self.hub, "link", "set", hub_end, "master", bridge, "up")
            _ip("-n", netns, "addr", "add", f"{address}/24", "dev", "eth0")
            _ip("-n", netns, "link", "set", "eth0", "up")
            _ip("-n", netns, "link", "set", "lo", "up")
            _ip("-n", netns, "route", "add", "224.0.0.0/4", "dev", "eth0")
            device = Device(name, home, netns, address, self.beacon_port)
        self.devices.append(device)
        return device

    def add_leg(self, device: Device, bridge: str, network: str) -> str:
        """A second interface (eth1) for a device, on another bridge and subnet; its
        address."""
        assert self.hub is not None and device.netns is not None
        index = self.devices.index(device) + 1
        hub_end = f"mn{self.tag}v{index}b"
        address = f"{network}.{self.beacon_port % 200}.{index}"
        _ip("link", "add", hub_end, "netns", self.hub, "type", "veth",
            "peer", "name", "eth1", "netns", device.netns)  # fmt: skip
        _ip("-n", self.hub, "link", "set", hub_end, "master", bridge, "up")
        _ip("-n", device.netns, "addr", "add", f"{address}/24", "dev", "eth1")
        _ip("-n", device.netns, "link", "set", "eth1", "up")
        return address

    def unplug(self, device: Device) -> None:
        """Take a device's cable out (its veth down on the hub)."""
        assert self.hub is not None
        index = self.devices.index(device) + 1
        _ip("-n", self.hub, "link", "set", f"mn{self.tag}v{index}", "down")

    def close(self) -> None:
        for device in self.devices:
            for process in device.processes:
                process.kill()
        if self.hub is not None:
            for device in self.devices:
                if device.netns:
                    subprocess.run(["ip", "netns", "del", device.netns], capture_output=True)
            subprocess.run(["ip", "netns", "del", self.hub], capture_output=True)
