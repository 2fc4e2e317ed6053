"""`mesh demo`: a pool on this machine, end to end, with nothing set up beforehand.

Every device of the demo is a separate agent process with its own MESHNET_HOME under a
temporary folder; everything started is stopped at the end, also on Ctrl+C.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import typer

from manifests import MeshObject, Pool
from meshctl.render import console, print_objects
from reconciler.home import Home
from reconciler.node import init_node
from reconciler.store import Store

T = TypeVar("T")

DEMO_POOL = """apiVersion: meshnet.dev/v1alpha1
kind: Pool
metadata:
  name: demo-pool
spec:
  networkId: demo
  admission: token
"""


class DemoDevice:
    """One demo device: a home and, once started, an agent process."""

    def __init__(self, root: Path, name: str) -> None:
        self.name = name
        self.home = Home(root / name)
        self.process: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        return {**os.environ, "MESHNET_HOME": str(self.home.root)}

    def start_agent(self) -> None:
        self.home.logs.mkdir(parents=True, exist_ok=True)
        out = (self.home.logs / "agent.out").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "meshctl", "agent"],
            env=self.env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def stop_agent(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def get(self, kind: str, name: str) -> MeshObject | None:
        with Store.open(self.home.root) as store:
            return store.get(kind, name)


def wait_until(check: Callable[[], T | None], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    with console.status(what):
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(0.05)
    raise TimeoutError(f"timed out after {timeout:.0f}s: {what}")


@contextmanager
def demo_devices(keep: bool) -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="meshnet-demo-"))
    try:
        yield root
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


def _pool_ready(device: DemoDevice) -> Pool | None:
    pool = device.get("Pool", "demo-pool")
    if isinstance(pool, Pool):
        condition = pool.status.condition("Ready")
        if condition is not None and condition.status == "True":
            return pool
    return None


def demo(
    keep: bool = typer.Option(False, "--keep", help="Keep the demo's folders afterwards."),
    timeout: float = typer.Option(60.0, "--timeout", help="Seconds to wait for each step."),
) -> None:
    """Run a pool on this machine end to end, then stop everything it started."""
    with demo_devices(keep) as root:
        admin = DemoDevice(root, "device1")
        try:
            started = time.monotonic()
            config = init_node(admin.home, "demo", "device1")
            console.print(
                f"[bold]device1[/bold] initialised as {config.node_id} ({admin.home.root})"
            )
            admin.start_agent()
            manifest = root / "pool.yaml"
            manifest.write_text(DEMO_POOL)
            subprocess.run(
                [sys.executable, "-m", "meshctl", "apply", "-f", str(manifest)],
                env=admin.env(), check=True,
            )  # fmt: skip
            pool = wait_until(
                lambda: _pool_ready(admin), timeout, "waiting for the pool to be Ready"
            )
            console.print(f"Pool Ready after {time.monotonic() - started:.2f}s:")
            print_objects(Pool, [pool], "wide")
        except (TimeoutError, subprocess.CalledProcessError) as err:
            console.print(f"[red]demo failed:[/red] {err}; logs in {root} (use --keep)")
            raise typer.Exit(1) from err
        except KeyboardInterrupt:
            console.print("interrupted; stopping")
            raise typer.Exit(130) from None
        finally:
            admin.stop_agent()
        console.print("Stopped everything the demo started.")
