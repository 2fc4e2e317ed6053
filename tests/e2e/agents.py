"""Running real agents as separate processes, and waiting on what they write."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from watchfiles import Change, watch

from manifests import MeshObject
from reconciler.home import Home
from reconciler.store import Store

T = TypeVar("T")

WATCHED: list[Path] = []  # the folders of the running test and its fixtures (``watching``)
RECHECK_SECONDS = 1.0


def wait_for(
    predicate: Callable[[], T | None],
    timeout: float = 15.0,
    what: str = "",
    recheck: float = RECHECK_SECONDS,
) -> T:
    """The predicate's first truthy value: checked at once, then each time a file under
    the test's folders changes (what the agents write: stores, ring files, logs); fail
    after the timeout.

    A bounded recheck every ``recheck`` seconds remains: some of what predicates read
    lives only in a running agent's memory (its local API), and no other process is
    told when that changes; it also covers a change made before the watch began.
    """
    assert WATCHED, "no folder to watch: see watching() and tests/e2e/conftest.py"
    deadline = time.monotonic() + timeout
    changes = watch(*WATCHED, watch_filter=None, debounce=100, step=10,
                    rust_timeout=int(recheck * 1000), yield_on_timeout=True)  # fmt: skip
    seen: dict[str, tuple[int, int] | None] = {}
    with contextlib.closing(changes):
        while not (value := predicate()):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
            _next_change(changes, seen, deadline)
    return value


Changes = Iterator[set[tuple[Change, str]]]


@contextlib.contextmanager
def watching(folder: Path) -> Iterator[None]:
    """While the block runs, ``wait_for`` wakes on changes under ``folder`` too."""
    WATCHED.append(folder)
    try:
        yield
    finally:
        WATCHED.remove(folder)


def _next_change(
    changes: Changes, seen: dict[str, tuple[int, int] | None], deadline: float
) -> None:
    """Return at the next change of a file's content, or after the recheck time without
    one. A file closed after being opened for writing is reported even when nothing was
    written (every reader of the store does so with SQLite's -wal file, the predicates
    too): such a report, whose file kept its size and time, is skipped."""
    for batch in changes:
        if not batch or time.monotonic() > deadline:
            return
        moved = False
        for _, path in batch:
            try:
                info = os.stat(path)
                now: tuple[int, int] | None = (info.st_mtime_ns, info.st_size)
            except OSError:
                now = None
            if path not in seen or seen[path] != now:
                seen[path], moved = now, True
        if moved:
            return


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
        try:
            wait_for(lambda: self.started() or self.proc.poll() is not None, what="agent start")
        except BaseException:  # nobody holds this object yet: stop the agent here
            self.kill()
            raise

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
