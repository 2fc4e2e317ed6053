"""Running real agents as separate processes, and waiting on what they write."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from manifests import MeshObject
from reconciler.home import Home
from reconciler.store import Store

T = TypeVar("T")


def wait_for(predicate: Callable[[], T | None], timeout: float = 15.0, what: str = "") -> T:
    """Poll until the predicate returns something truthy; fail after the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(0.02)


def cli(home: Home, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run meshctl against a home, as a user would."""
    env = {**os.environ, "MESHNET_HOME": str(home.root)}
    return subprocess.run(
        [sys.executable, "-m", "reconciler.entry", *args], env=env, capture_output=True, text=True,
        check=check, timeout=60,
    )  # fmt: skip


class AgentProcess:
    """`meshctl agent` in its own process group, stopped by the test that started it."""

    def __init__(
        self,
        home: Home,
        *extra: str,
        prefix: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.home = home
        self.log = home.root / "agent-test.out"
        home.root.mkdir(parents=True, exist_ok=True)
        env = env or {**os.environ, "MESHNET_HOME": str(home.root)}
        self._offset = self.log.stat().st_size if self.log.exists() else 0
        self.proc = subprocess.Popen(
            [*(prefix or []), sys.executable, "-m", "reconciler.entry", "agent", *extra],
            env=env, stdout=self.log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        wait_for(lambda: self.started() or self.proc.poll() is not None, what="agent start")

    def started(self) -> bool:
        return self.log.exists() and b"agent started" in self.log.read_bytes()[self._offset :]

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


def ready(home: Home, kind: str, name: str) -> MeshObject | None:
    """The object once its Ready condition is True."""
    with Store.open(home.root) as store:
        obj = store.get(kind, name)
    if obj is None:
        return None
    condition = obj.status.condition("Ready")
    return obj if condition is not None and condition.status == "True" else None


def stored(home: Home, kind: str, name: str) -> MeshObject | None:
    with Store.open(home.root) as store:
        return store.get(kind, name)


def write(path: Path, text: str) -> None:
    """Replace a file's content in one step (as editors and git checkouts do)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)
