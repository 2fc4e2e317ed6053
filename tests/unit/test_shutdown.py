"""The agent loop's exception handler: cancellations while stopping are quiet."""

from __future__ import annotations

import asyncio
import logging

import pytest

from reconciler.shutdown import quiet_cancellations


def test_cancellations_are_logged_at_debug_and_errors_still_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = asyncio.new_event_loop()
    try:
        caplog.set_level(logging.DEBUG)
        quiet_cancellations(loop, {"message": "Exception in callback x()", "exception": asyncio.CancelledError()})
        assert [r.levelno for r in caplog.records] == [logging.DEBUG]
        caplog.clear()
        quiet_cancellations(loop, {"message": "Exception in callback y()", "exception": ValueError("boom")})
        assert [r.levelno for r in caplog.records] == [logging.ERROR]
        assert "Exception in callback y()" in caplog.records[0].getMessage()
    finally:
        loop.close()
