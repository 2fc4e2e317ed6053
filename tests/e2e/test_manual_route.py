"""The guide's manual route starts the relay and the control plane before the pool
exists (`mesh-relay --port 4001 &`, `mesh-control-plane --port 8080 &`, `mesh init`,
`mesh pool-create`): both wait for the pool, then serve it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path

from agents import wait_for

from reconciler.home import Home

SERVICES = {
    "relay": ("reconciler.relay.cli", "relay.port", "41091"),
    "control plane": ("reconciler.controlplane.cli", "control-plane.port", "41181"),
}


def port_in(path: Path) -> str | None:
    """The port a service wrote to its port file, once it did."""
    return path.read_text().strip() if path.exists() else None


def test_services_started_before_the_pool_wait_for_it(home: Home) -> None:
    env = {**os.environ, "MESHNET_HOME": str(home.root)}
    started = {}
    try:
        for name, (module, _, port) in SERVICES.items():
            command = [sys.executable, "-c", f"from {module} import app; app()", "--port", port,
                       "--host", "127.0.0.1"]  # fmt: skip
            started[name] = subprocess.Popen(
                command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
        for process in started.values():
            assert process.stdout is not None
            assert "waiting for `mesh pool-create`" in process.stdout.readline()
        mesh = [sys.executable, "-m", "reconciler.entry.mesh"]
        subprocess.run(
            [*mesh, "init", "--network-id", "test", "--name", "Device1"],
            env=env,
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [*mesh, "pool-create", "--name", "test-pool"], env=env, check=True, capture_output=True
        )
        for name, (_, port_file, port) in SERVICES.items():
            path = home.root / port_file
            assert wait_for(partial(port_in, path), 20, f"{name} serving") == port
    finally:
        for process in started.values():
            process.send_signal(signal.SIGINT)
        for process in started.values():
            assert process.wait(20) in (0, 130, -signal.SIGINT)
