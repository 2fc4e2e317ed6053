"""The agent's pushed streams, for the control plane's own streams (job events, the
OpenAI API, the dashboard): an asyncio client of the local API's ``follow-job`` and
``watch`` (JSON lines on ``MESHNET_HOME/agent.sock``; the protocol is in
reconciler/localapi.py). Standard library only: the control plane does not import the
agent's runtime, it talks to it.

    AgentFeedError          the stream cannot be had or went wrong
      NoAgentFeed           no agent answers on the socket (none runs, or an older one)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

Event = dict[str, Any]
MAX_LINE = 1 << 24  # a snapshot carries every token so far


class AgentFeedError(Exception):
    """The agent's stream cannot be had, or it went wrong."""


class NoAgentFeed(AgentFeedError):
    """No agent answers on the socket."""


@asynccontextmanager
async def agent_stream(path: Path, request: Event) -> AsyncIterator[AsyncIterator[Event]]:
    """The events the agent pushes for ``request``; the iterator ends when the agent
    closes the stream. Leaving the block closes the connection (the agent drops the
    stream's follower)."""
    try:
        reader, writer = await asyncio.open_unix_connection(str(path), limit=MAX_LINE)
    except OSError as err:
        raise NoAgentFeed(f"no agent answers on {path}: {err.strerror or err}") from err
    try:
        writer.write(json.dumps(request).encode() + b"\n")
        await writer.drain()
        yield _events(reader)
    except OSError as err:
        raise AgentFeedError(f"the agent's stream broke: {err}") from err
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _events(reader: asyncio.StreamReader) -> AsyncIterator[Event]:
    while True:
        try:
            line = await reader.readline()
        except ValueError as err:  # a line beyond MAX_LINE
            raise AgentFeedError(f"the agent sent a line too long: {err}") from err
        if not line:
            return
        try:
            message = json.loads(line)
        except ValueError as err:
            raise AgentFeedError(f"the agent sent something not JSON: {err}") from err
        if not isinstance(message, dict) or "error" in message:
            raise NoAgentFeed(f"the agent refused the stream: {message}")
        yield message
