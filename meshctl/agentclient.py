"""A client of the agent's local API (the Unix socket MESHNET_HOME/agent.sock).

Standard library only, and nothing of the agent's runtime: the protocol is JSON lines
(see reconciler/localapi.py). Every call raises NoAgent when no agent answers.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

Event = dict[str, Any]
TERMINAL = ("Succeeded", "Failed")
CONNECT_SECONDS = 2.0
RECONCILE_SECONDS = 30.0  # a Pool's first reconcile makes its root key
MAX_LINE = 1 << 24  # a snapshot carries every token so far


class NoAgent(Exception):
    """No agent answers on the socket (none runs, or it predates the local API)."""


class AgentGone(Exception):
    """The agent closed the stream before it ended (it stopped, or the request was bad)."""


def ends(event: Event) -> bool:
    """Whether a followed job's event is its stream's last (a terminal phase, deleted)."""
    return event.get("phase") in TERMINAL or event.get("event") == "deleted"


class JobStream:
    """The events of one stream (a followed job, a watch), each pushed by the agent as
    it happens. Iterating blocks until the next event (or yields None after ``idle``
    seconds without one, when ``idle`` is given), and stops after a job's end."""

    def __init__(self, sock: socket.socket, idle: float | None) -> None:
        self._sock = sock
        self._idle = idle
        self._buffer = bytearray()
        self.pending: Event | None = None  # an event read ahead, given first

    def __iter__(self) -> Iterator[Event | None]:
        try:
            while True:
                event = self.next_event()
                yield event
                if event is not None and ends(event):
                    return
        finally:
            self.close()

    def close(self) -> None:
        self._sock.close()

    def next_event(self) -> Event | None:
        if self.pending is not None:
            event, self.pending = self.pending, None
            return event
        while b"\n" not in self._buffer:
            self._sock.settimeout(self._idle)  # None: block until the agent pushes
            try:
                chunk = self._sock.recv(65536)
            except TimeoutError:
                return None
            if not chunk:
                raise AgentGone("the agent ended the stream before the job did")
            self._buffer += chunk
            if len(self._buffer) > MAX_LINE:
                raise AgentGone("the agent sent a line too long to be an event")
        line, _, rest = self._buffer.partition(b"\n")
        self._buffer = bytearray(rest)
        message = json.loads(line)
        if not isinstance(message, dict) or "error" in message:
            raise AgentGone(f"the agent refused: {message}")
        return message


class AgentClient:
    """Talks to the agent of one MESHNET_HOME through its socket."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def ping(self) -> Event:
        """The agent's answer to a ping: ``{"ok": true, "pid": ..., "home": ...}``."""
        sock = self._request({"op": "ping"})
        try:
            stream = JobStream(sock, CONNECT_SECONDS)
            answer = stream.next_event()
        finally:
            sock.close()
        if answer is None:
            raise NoAgent(f"the agent on {self.path} did not answer")
        return answer

    def observed(self, what: str, pool: str | None = None) -> list[Event]:
        """``peers`` or ``ring`` of the agent's running pools (or of ``pool``), as of now."""
        sock = self._request({"op": what, "pool": pool})
        try:
            answer = JobStream(sock, CONNECT_SECONDS).next_event()
        finally:
            sock.close()
        items = answer.get("items") if answer is not None else None
        if not isinstance(items, list):
            raise NoAgent(f"the agent on {self.path} did not answer {what!r}")
        return items

    def reconcile(self, kind: str, name: str) -> None:
        """Have the agent's executor reconcile object ``kind``/``name`` now."""
        sock = self._request({"op": "reconcile", "kind": kind, "name": name})
        try:
            answer = JobStream(sock, RECONCILE_SECONDS).next_event()
        except AgentGone as err:
            raise NoAgent(f"the agent on {self.path} refused 'reconcile': {err}") from err
        finally:
            sock.close()
        if answer is None or answer.get("ok") is not True:
            raise NoAgent(f"the agent on {self.path} did not answer 'reconcile'")

    def interfaces(self, discovery: Event) -> Event:
        """The agent's interface report for a Pool's discovery settings (the manifest's
        ``spec.discovery``): its interfaces, beacon interfaces and LAN address."""
        sock = self._request({"op": "interfaces", "discovery": discovery})
        try:
            answer = JobStream(sock, CONNECT_SECONDS).next_event()
        except AgentGone as err:
            raise NoAgent(f"the agent on {self.path} refused 'interfaces': {err}") from err
        finally:
            sock.close()
        report = answer.get("report") if answer is not None else None
        if not isinstance(report, dict):
            raise NoAgent(f"the agent on {self.path} did not answer 'interfaces'")
        return report

    def follow_job(self, name: str, idle: float | None = None) -> JobStream:
        """Follow job ``name``: a snapshot of what the agent knows of it, then its tokens,
        load progress, phases and stored changes (``status``) as they happen, until it
        ends (a terminal phase, or ``deleted``)."""
        return JobStream(self._request({"op": "follow-job", "name": name}), idle)

    def watch(self, idle: float | None = None) -> JobStream:
        """The store's revision now and at every move: ``{"event": "changed",
        "revision": R}`` pushed by the agent (the stream lasts until closed)."""
        stream = JobStream(self._request({"op": "watch"}), idle)
        try:
            first = stream.next_event()
        except AgentGone as err:  # an agent that predates the op refuses it
            stream.close()
            raise NoAgent(f"the agent on {self.path} refused 'watch': {err}") from err
        if first is None or first.get("event") != "changed":
            stream.close()
            raise NoAgent(f"the agent on {self.path} did not answer 'watch'")
        stream.pending = first
        return stream

    def _request(self, request: Event) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(CONNECT_SECONDS)
        try:
            sock.connect(str(self.path))
            sock.sendall(json.dumps(request).encode() + b"\n")
        except OSError as err:
            sock.close()
            raise NoAgent(f"no agent answers on {self.path}: {err.strerror or err}") from err
        return sock
