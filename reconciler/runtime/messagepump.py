"""Runs a sans-IO message machine (gossip) over peer links: frames in, frames out,
one event-loop timer for the machine's deadline."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

from reconciler.drivers.peerlinks import PeerLinks
from reconciler.drivers.timers import MachineTimer, deliver_events
from reconciler.frames import Channel

log = logging.getLogger("meshnet.gossip")


class MessageMachine(Protocol):
    def receive_message(self, from_node_id: str, data: bytes, now: float) -> None: ...
    def messages_to_send(self) -> list[tuple[str, bytes]]: ...
    def get_timer(self) -> float | None: ...
    def handle_timer(self, now: float) -> None: ...
    def next_event(self) -> Any: ...


class MessagePump:
    """Feeds one channel of the peer links to a machine and sends what it says."""

    def __init__(
        self,
        machine: MessageMachine,
        links: PeerLinks,
        channel: Channel,
        on_event: Callable[[Any], None],
        clock: Callable[[], float] | None = None,
    ) -> None:
        """``clock`` is the machine's time (default: the event loop's; tests pass a fake)."""
        self.machine = machine
        self.links = links
        self.channel = channel
        self.on_event = on_event
        self.unsendable = 0
        self.sent = self.received = self.rounds = 0  # counters for /metrics
        self._clock = clock or asyncio.get_running_loop().time
        self._timer = MachineTimer(machine, self._clock, self._after_round)

    def now(self) -> float:
        return self._clock()

    def receive(self, from_node_id: str, payload: bytes) -> None:
        self.received += 1
        self.machine.receive_message(from_node_id, payload, self.now())
        self.flush()

    def flush(self) -> None:
        for to_node, data in self.machine.messages_to_send():
            self.sent += 1
            if not self.links.send(to_node, self.channel, data):
                self.unsendable += 1
        deliver_events(self.machine, self.on_event, log)
        self._timer.arm()

    def _after_round(self) -> None:
        """The machine's timer fired (a probe, gossip or push-pull round)."""
        self.rounds += 1
        self.flush()

    def close(self) -> None:
        self._timer.cancel()
