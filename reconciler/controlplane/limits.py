"""The control plane's resource limits: request bodies, event streams, connections.

- ``BodyLimit`` (ASGI middleware): a body over its path's limit gets 413 before the
  application sees it (by ``Content-Length``, or as it streams in: the body is read,
  bounded, before the application runs).
- ``StreamSlots``: server-sent event streams are capped per caller and in total
  (429 beyond); a slot also expires after the longest stream lifetime, so a stream
  whose end was never seen cannot hold it for ever.
- uvicorn's settings (serve.py): ``LIMIT_CONCURRENCY`` connections and tasks,
  ``KEEP_ALIVE_SECONDS``, and the TLS handshake deadline of drivers/gate.py; at most
  ``CONNECTIONS_PER_ADDRESS`` open connections per remote address (auth.py).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_BODY = 64 * 1024
BODY_LIMITS = {"/v1/join": 16 * 1024, "/v1/jobs": 1024 * 1024}
LIMIT_CONCURRENCY = 64
CONNECTIONS_PER_ADDRESS = 16  # applied by auth.PeerCertH11Protocol
KEEP_ALIVE_SECONDS = 5
STREAMS_PER_CALLER = 4
STREAMS_TOTAL = 32
STREAM_SECONDS = 600.0


def body_limit(path: str) -> int:
    for prefix, limit in BODY_LIMITS.items():
        if path == prefix or path.startswith(prefix + "/"):
            return limit
    return DEFAULT_BODY


class BodyLimit:
    """Refuse request bodies over the path's limit with 413."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(str(scope.get("path", "")))
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > limit:
            await _refuse(send, limit)
            return
        if scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive, limit)
        if body is None:
            await _refuse(send, limit)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # a disconnect, once the body was read
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None once it passes ``limit`` bytes."""
    chunks: list[bytes] = []
    seen = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        seen += len(chunk)
        if seen > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _refuse(send: Send, limit: int) -> None:
    body = json.dumps({"error": f"request body over {limit} bytes"}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class StreamSlots:
    """Open event streams, per caller and in total."""

    def __init__(
        self, per_caller: int = STREAMS_PER_CALLER, total: int = STREAMS_TOTAL,
        lifetime: float = STREAM_SECONDS + 60.0, clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.per_caller, self.total, self.lifetime, self.clock = per_caller, total, lifetime, clock
        self._open: dict[int, tuple[str, float]] = {}
        self._ids = itertools.count()
        self._lock = threading.Lock()

    def acquire(self, caller: str) -> int | None:
        """A slot for a new stream of ``caller``; None when a cap is reached."""
        with self._lock:
            now = self.clock()
            self._open = {k: v for k, v in self._open.items() if v[1] > now}
            mine = sum(1 for who, _ in self._open.values() if who == caller)
            if len(self._open) >= self.total or mine >= self.per_caller:
                return None
            slot = next(self._ids)
            self._open[slot] = (caller, now + self.lifetime)
            return slot

    def release(self, slot: int) -> None:
        with self._lock:
            self._open.pop(slot, None)

    def count(self) -> int:
        return len(self._open)
