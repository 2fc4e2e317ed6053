"""A machine's timer: an event loop may fire it up to its clock resolution early; the
machine is then handed its deadline, so it acts once instead of asking again and again."""

from __future__ import annotations

import asyncio

from reconciler.drivers.timers import MachineTimer


class Machine:
    """Acts once its deadline has come; records the times it was handed."""

    def __init__(self, deadline: float) -> None:
        self.deadline: float | None = deadline
        self.handed: list[float] = []

    def get_timer(self) -> float | None:
        return self.deadline

    def handle_timer(self, now: float) -> None:
        self.handed.append(now)
        if self.deadline is not None and now >= self.deadline:
            self.deadline = None  # done: no further deadline

    def next_event(self) -> object:
        return None


def test_an_early_fire_hands_the_machine_its_deadline() -> None:
    async def scenario() -> Machine:
        machine, fired = Machine(10.0), asyncio.Event()
        times = iter([9.999, 9.9995])  # armed 1 ms ahead, fired half a millisecond early

        timer = MachineTimer(machine, lambda: next(times), fired.set)
        timer.arm()
        await asyncio.wait_for(fired.wait(), 30)
        return machine

    machine = asyncio.run(scenario())
    assert machine.handed == [10.0]
    assert machine.deadline is None  # acted on the first fire: nothing re-armed


def test_a_late_fire_hands_the_machine_the_time() -> None:
    async def scenario() -> Machine:
        machine, fired = Machine(10.0), asyncio.Event()
        times = iter([9.999, 10.25])
        timer = MachineTimer(machine, lambda: next(times), fired.set)
        timer.arm()
        await asyncio.wait_for(fired.wait(), 30)
        return machine

    assert asyncio.run(scenario()).handed == [10.25]
