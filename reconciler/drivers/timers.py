"""What every pump of a sans-IO machine does besides I/O: keep one event-loop timer on
the machine's deadline, and hand its events to the driver.

Event loops fire timers up to their clock resolution early (uvloop: a millisecond, in
about half the cases). A timer that fires early hands the machine its deadline as the
time: told the true, earlier time, the machine would do nothing and ask for the same
deadline again, and the pump would spin until the clock caught up."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol


class TimedMachine(Protocol):
    def get_timer(self) -> float | None: ...
    def handle_timer(self, now: float) -> None: ...
    def next_event(self) -> Any: ...


class MachineTimer:
    """One timer for a machine; `after_fire` runs once the machine handled it."""

    def __init__(
        self, machine: TimedMachine, clock: Callable[[], float], after_fire: Callable[[], None]
    ) -> None:
        self.machine, self.clock, self.after_fire = machine, clock, after_fire
        self._handle: asyncio.TimerHandle | None = None
        self._deadline = 0.0

    def arm(self) -> None:
        """(Re)arm on the machine's current deadline, if it has one."""
        self.cancel()
        deadline = self.machine.get_timer()
        if deadline is not None:
            self._deadline = deadline
            delay = max(0.0, deadline - self.clock())
            self._handle = asyncio.get_running_loop().call_later(delay, self._fire)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self) -> None:
        self._handle = None
        self.machine.handle_timer(max(self.clock(), self._deadline))
        self.after_fire()


def deliver_events(
    machine: TimedMachine, on_event: Callable[[Any], None], log: logging.Logger
) -> None:
    """Hand every pending event to the driver; a failing handler is logged, not raised."""
    while (event := machine.next_event()) is not None:
        try:
            on_event(event)
        except Exception:
            log.exception("handling %r failed", event)
