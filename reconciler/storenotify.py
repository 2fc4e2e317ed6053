"""How a write to the store reaches the agent at once, without polling.

Writes by the agent's own connection call its in-process listeners (``Store.on_change``).
A write by another connection (meshctl apply, the folder watch, the control plane, the
OpenAI API) that bumps the store's revision sends one datagram to the agent's notify
socket, ``MESHNET_HOME/agent.notify`` (a Unix datagram socket, mode 0600): the agent
wakes on it (``StoreWatch``), compares the revision and runs a pass only when it moved.
A datagram that cannot be sent (no agent, a full queue) is dropped: the agent still
looks at SQLite's ``PRAGMA data_version`` every ``FALLBACK_SECONDS`` to catch writers
that do not notify (an older meshnet, the sqlite3 shell).

Inside the agent, ``ChangeHub`` passes each move of the revision on to whoever waits
(the local API's ``watch`` and ``follow-job`` streams): one broadcast, no polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path

from reconciler.privatesocket import bind_private, temporary_name

log = logging.getLogger("meshnet.storenotify")


NOTIFY_NAME = "agent.notify"
FALLBACK_SECONDS = 5.0


class ChangeHub:
    """The agent's store changes, broadcast in-process: ``publish(revision)`` wakes
    every waiter at once. A burst is one wake-up: a waiter sees the latest revision."""

    def __init__(self) -> None:
        self.revision = -1
        self._waiters: set[asyncio.Future[int]] = set()

    def publish(self, revision: int) -> None:
        self.revision = revision
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(revision)
        self._waiters.clear()

    async def changed(self, since: int) -> int:
        """The revision once it differs from ``since`` (at once if it already does)."""
        if self.revision != since:
            return self.revision
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        try:
            return await waiter
        finally:
            self._waiters.discard(waiter)


def notify_path(db_path: Path) -> Path:
    """The agent's notify socket next to a store's database file."""
    return db_path.with_name(NOTIFY_NAME)


class Pinger:
    """Tells the agent of a store that the store changed (one datagram, never blocks)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sock: socket.socket | None = None

    def ping(self) -> None:
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._sock.setblocking(False)
            self._sock.sendto(b"!", str(self.path))
        except OSError:
            pass  # no agent listening (or its queue is full: a wake-up is pending anyway)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def bind_notify_socket(path: Path) -> socket.socket:
    """The agent's notify socket at ``path``, mode 0600 from the start (bound under a
    temporary name, then renamed into place; a stale one is replaced)."""
    temporary = temporary_name(path, ".notify")
    if temporary is None:
        raise OSError(f"{path} is too long for a Unix socket (MESHNET_HOME too deep)")
    return bind_private(temporary, path, socket.SOCK_DGRAM)


class StoreWatch:
    """Calls ``on_ping`` whenever a datagram arrives on the notify socket (drained in
    one go: a burst of writes is one wake-up)."""

    def __init__(self, path: Path, on_ping: Callable[[], None]) -> None:
        self.path, self.on_ping = path, on_ping
        self._sock: socket.socket | None = None
        self._inode = 0

    def start(self) -> None:
        self._sock = bind_notify_socket(self.path)
        self._inode = os.stat(self.path).st_ino
        asyncio.get_running_loop().add_reader(self._sock.fileno(), self._readable)

    def _readable(self) -> None:
        assert self._sock is not None
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while self._sock.recv(64):
                pass
        self.on_ping()

    def close(self) -> None:
        if self._sock is None:
            return
        asyncio.get_running_loop().remove_reader(self._sock.fileno())
        self._sock.close()
        self._sock = None
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == self._inode:
                self.path.unlink()
