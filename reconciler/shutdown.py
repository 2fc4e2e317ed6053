"""A clean end on Ctrl+C: cancellations while stopping are not errors.

When the agent stops, its tasks are cancelled; a callback still scheduled on the loop
(a transport closing, a future's done-callback) may then meet a CancelledError, which
asyncio's default handler logs as "Exception in callback ... CancelledError" with a
traceback. Those are part of stopping: logged at DEBUG. Every other error keeps going
to the default handler.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger("meshnet.agent")


def quiet_cancellations(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """A loop exception handler (loop.set_exception_handler) that drops cancellations."""
    if isinstance(context.get("exception"), asyncio.CancelledError | KeyboardInterrupt):
        log.debug("cancelled while stopping: %s", context.get("message", ""))
        return
    loop.default_exception_handler(context)
