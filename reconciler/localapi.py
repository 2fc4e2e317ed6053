"""The agent's local API: a Unix socket in MESHNET_HOME (mode 0600) for live operations.

Protocol (JSON lines, one request per connection, then the agent's answer or stream):

- ``{"op": "ping"}`` -> ``{"ok": true, "pid": ..., "home": ...}``
- ``{"op": "peers" | "ring", "pool": P or null}`` -> ``{"items": [...]}``: the peers or
  rings of the running pools as of now (what `meshctl get peers|ring` lists)
- ``{"op": "interfaces", "discovery": D}`` -> ``{"report": {...}}``: for a Pool's
  discovery settings D (as in its manifest), the interfaces and the beacon interfaces
  the agent sees, and its LAN address (reconciler/probes.py; `meshctl doctor`,
  `mesh pool-info`)
- ``{"op": "reconcile", "kind": K, "name": N}`` -> ``{"ok": true}`` once the agent's
  executor has reconciled object K/N (`mesh pool-create` with an agent running: no
  second executor in the CLI)
- ``{"op": "follow-job", "name": N}`` -> a ``snapshot`` of what the job runner knows of N
  (phase, tokens so far), then ``phase``, ``progress`` and ``token`` events as the runner
  produces them, pushed in-process (no store polling), and ``status``
  (``{"phase", "resourceVersion"}``) whenever the stored Job changed (its conditions,
  a phase written by its controller), so a job this runner never carries is followed
  too. The stream ends after a phase Succeeded or Failed (the job's final figures are in
  the store by then) or ``{"event": "deleted"}``. Used by `mesh inference`, `meshctl
  logs -f`, `mesh chat`, and the control plane's job streams (SSE, OpenAI API).
- ``{"op": "watch"}`` -> ``{"event": "changed", "revision": R}`` at once, then whenever
  the store's revision moves (any writer, any kind: `meshctl get -w` reads what changed
  from the store). Volatile writes (tokens, counters) do not move it.
- anything else -> ``{"error": "..."}``

Declarative objects stay in the store; this socket carries what happens now. The
streams' logic is in localstreams.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from manifests.pool import DiscoverySpec
from reconciler import localstreams
from reconciler.privatesocket import bind_private, temporary_name
from reconciler.probes import interface_report
from reconciler.runtime.jobfeed import Event, Follower
from reconciler.store import Store
from reconciler.storenotify import ChangeHub

Observe = Callable[[str, str | None], list[dict[str, Any]]]
Reconcile = Callable[[str, str], None]

log = logging.getLogger("meshnet.localapi")

KINDS = ("Pool", "Member", "Job")

MAX_REQUEST = 64 * 1024


class LocalApiError(Exception):
    """The socket cannot be served (path too long, another process answers on it)."""


def _answers(path: Path) -> bool:
    """Whether a process accepts connections on the socket at ``path``."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def bind_socket(path: Path) -> socket.socket:
    """A listening socket at ``path`` with mode 0600 from the start (bound under a
    temporary name, then renamed into place). A stale socket left by a dead agent is
    replaced; one that still answers is an error."""
    temporary = temporary_name(path, ".sock")
    if temporary is None:
        raise LocalApiError(f"{path} is too long for a Unix socket (MESHNET_HOME too deep)")
    if path.is_socket() or path.is_symlink() or path.exists():
        if path.is_socket() and _answers(path):
            raise LocalApiError(f"another process answers on {path}")
        log.info("replacing the stale local API socket %s", path)
        path.unlink()
    sock = bind_private(temporary, path, socket.SOCK_STREAM)
    sock.listen(16)
    return sock


class LocalApi:
    """Serves the agent's socket until ``stop`` is set, then removes it."""

    def __init__(
        self,
        path: Path,
        follow: Callable[[str], Follower],
        observe: Observe | None = None,
        reconcile: Reconcile | None = None,
        store: Store | None = None,
        changes: ChangeHub | None = None,
    ) -> None:
        """``store`` (the agent's connection) and ``changes`` (its store's moves) let
        ``follow-job`` see the stored Job and serve ``watch``."""
        self.path = path
        self.follow = follow
        self.observe = observe
        self.reconcile = reconcile
        self.store, self.changes = store, changes
        self._clients: set[asyncio.Task[Any]] = set()
        self.ready = asyncio.Event()  # set once the socket accepts connections

    async def serve(self, stop: asyncio.Event) -> None:
        sock = bind_socket(self.path)
        inode = os.stat(self.path).st_ino
        server = await asyncio.start_unix_server(self._client, sock=sock, limit=MAX_REQUEST)
        log.info("local API on %s", self.path)
        self.ready.set()
        try:
            await stop.wait()
        finally:
            server.close()
            for task in list(self._clients):
                task.cancel()
            await asyncio.gather(*self._clients, return_exceptions=True)
            await server.wait_closed()
            with contextlib.suppress(OSError):
                if os.stat(self.path).st_ino == inode:
                    self.path.unlink()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        try:
            request = await _read_request(reader)
            if isinstance(request, str):
                await _send(writer, {"error": request})
            else:
                await self._answer(request, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away
        except asyncio.CancelledError:
            pass  # the agent stops (asyncio's server logs a handler that ends cancelled)
        finally:
            self._clients.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(
        self, request: dict[str, Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        op = request.get("op")
        if op == "ping":
            await _send(writer, {"ok": True, "pid": os.getpid(), "home": str(self.path.parent)})
        elif (op == "follow-job" and isinstance(request.get("name"), str)) or (
            op == "watch" and self.changes is not None
        ):
            await self._stream(request, reader, writer)
        elif op == "reconcile" and self.reconcile is not None:
            await _send(writer, self._reconciled(request.get("kind"), request.get("name")))
        elif op == "interfaces":
            await _send(writer, _interfaces(request.get("discovery")))
        elif op in ("peers", "ring") and self.observe is not None:
            pool = request.get("pool")
            await _send(writer, self._observed(op, pool if isinstance(pool, str) else None))
        else:
            known = "ping, watch, follow-job NAME, peers, ring, interfaces, reconcile"
            await _send(writer, {"error": f"unknown request {op!r} ({known})"})

    def _observed(self, what: str, pool: str | None) -> Event:
        assert self.observe is not None
        try:
            return {"items": self.observe(what, pool)}
        except Exception as err:  # a runtime's bug is the answer, never the agent's end
            log.exception("reading %s for the local API failed", what)
            return {"error": f"reading {what} failed: {type(err).__name__}: {err}"}

    def _reconciled(self, kind: object, name: object) -> Event:
        assert self.reconcile is not None
        if kind not in KINDS or not isinstance(name, str):
            return {"error": f"reconcile needs a kind ({', '.join(KINDS)}) and a name"}
        try:
            self.reconcile(kind, name)
        except Exception as err:  # a handler's bug is the answer, never the agent's end
            log.exception("reconciling %s %s for the local API failed", kind, name)
            return {"error": f"reconciling {kind} {name} failed: {type(err).__name__}: {err}"}
        return {"ok": True}

    async def _stream(
        self, request: dict[str, Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """A ``watch`` or ``follow-job`` stream, until it ends or the client leaves."""
        gone = asyncio.ensure_future(reader.read(1))  # the client closing ends the stream

        async def send(event: Event) -> None:
            await _send(writer, event)

        try:
            if request["op"] == "watch":
                assert self.changes is not None
                await localstreams.watch(self.changes, send, gone)
                return
            follower = self.follow(request["name"])
            try:
                await localstreams.follow_job(
                    request["name"], follower, self.store, self.changes, send, gone
                )
            finally:
                follower.close()
        finally:
            gone.cancel()


def _interfaces(discovery: object) -> Event:
    try:
        spec = DiscoverySpec.model_validate(discovery if discovery is not None else {})
    except ValidationError as err:
        return {"error": f"bad discovery settings: {err.error_count()} error(s): {err}"}
    return {"report": interface_report(spec)}


async def _read_request(reader: asyncio.StreamReader) -> dict[str, Any] | str:
    """The client's request, or why it cannot be read."""
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.LimitOverrunError:
        return f"request longer than {MAX_REQUEST} bytes"
    try:
        request = json.loads(line)
    except ValueError as err:
        return f"request is not JSON: {err}"
    return request if isinstance(request, dict) else "request is not a JSON object"


async def _send(writer: asyncio.StreamWriter, message: Event) -> None:
    writer.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
    await writer.drain()
