"""The message pump runs a sans-IO machine on the peer links: it hands the machine what
arrives (with the pump's clock), sends what the machine says on its channel, counts
what it sent, received and could not send, hands events to the driver, and keeps one
timer on the machine's deadline."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from reconciler.drivers.peerlinks import PeerLinks
from reconciler.frames import Channel
from reconciler.runtime.messagepump import MessagePump


class Clock:
    def __init__(self, now: float = 500.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Echo:
    """Answers every message to its sender; each timer round greets every known peer
    and, while ``rounds_left``, asks to be woken again at once."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.received: list[tuple[str, bytes, float]] = []
        self.rounds_at: list[float] = []
        self.deadline: float | None = None
        self.rounds_left = 0
        self.peers: list[str] = []
        self._out: list[tuple[str, bytes]] = []
        self._events: list[Any] = []

    def receive_message(self, from_node_id: str, data: bytes, now: float) -> None:
        self.received.append((from_node_id, data, now))
        self._out.append((from_node_id, b"re:" + data))
        self._events.append(("heard", from_node_id))

    def messages_to_send(self) -> list[tuple[str, bytes]]:
        out, self._out = self._out, []
        return out

    def get_timer(self) -> float | None:
        return self.deadline

    def handle_timer(self, now: float) -> None:
        self.rounds_at.append(now)
        self._out.extend((peer, b"round %d" % len(self.rounds_at)) for peer in self.peers)
        self.rounds_left -= 1
        self.deadline = self.clock.now if self.rounds_left > 0 else None

    def next_event(self) -> Any:
        return self._events.pop(0) if self._events else None

    def emit(self, *events: Any) -> None:
        self._events.extend(events)


class Links:
    """Peer links that know some nodes; ``sent`` is set at each frame."""

    def __init__(self, known: set[str]) -> None:
        self.known = known
        self.frames: list[tuple[str, Channel, bytes]] = []
        self.sent = asyncio.Event()

    def send(self, node_id: str, channel: Channel, payload: bytes) -> bool:
        if node_id not in self.known:
            return False
        self.frames.append((node_id, channel, payload))
        self.sent.set()
        return True


def _pump(known: set[str]) -> tuple[MessagePump, Echo, Links, Clock, list[Any]]:
    clock = Clock()
    machine, links = Echo(clock), Links(known)
    events: list[Any] = []
    pump = MessagePump(machine, cast(PeerLinks, links), Channel.GOSSIP, events.append, clock)
    return pump, machine, links, clock, events


def test_a_message_in_reaches_the_machine_and_its_answer_goes_out() -> None:
    async def scenario() -> None:
        pump, machine, links, clock, events = _pump({"a"})
        pump.receive("a", b"ping")
        clock.now += 2.5
        pump.receive("a", b"again")
        assert machine.received == [("a", b"ping", 500.0), ("a", b"again", 502.5)]
        assert links.frames == [
            ("a", Channel.GOSSIP, b"re:ping"),
            ("a", Channel.GOSSIP, b"re:again"),
        ]
        assert events == [("heard", "a"), ("heard", "a")]
        assert (pump.received, pump.sent, pump.unsendable) == (2, 2, 0)
        pump.close()

    asyncio.run(scenario())


def test_messages_to_unreachable_peers_are_dropped_and_counted() -> None:
    async def scenario() -> None:
        pump, machine, links, _, _ = _pump({"a"})
        pump.receive("stranger", b"hello")  # its answer has nowhere to go
        pump.receive("a", b"hello")
        assert links.frames == [("a", Channel.GOSSIP, b"re:hello")]
        assert (pump.received, pump.sent, pump.unsendable) == (2, 2, 1)
        assert [m[0] for m in machine.received] == ["stranger", "a"]
        pump.close()

    asyncio.run(scenario())


def test_a_failing_event_handler_does_not_lose_later_events() -> None:
    async def scenario() -> None:
        clock = Clock()
        machine, links = Echo(clock), Links(set())
        seen: list[Any] = []

        def on_event(event: Any) -> None:
            if event == "bad":
                raise ValueError("handler bug")
            seen.append(event)

        pump = MessagePump(machine, cast(PeerLinks, links), Channel.GOSSIP, on_event, clock)
        machine.emit("first", "bad", "last")
        pump.flush()
        assert seen == ["first", "last"]
        pump.close()

    asyncio.run(scenario())


def test_the_machines_timer_runs_rounds_at_the_pumps_clock() -> None:
    async def scenario() -> None:
        pump, machine, links, clock, _ = _pump({"a", "b"})
        machine.peers = ["a", "b"]
        machine.deadline, machine.rounds_left = clock.now, 3  # due now, then twice more
        pump.flush()
        while len(links.frames) < 6:
            links.sent.clear()
            await asyncio.wait_for(links.sent.wait(), 10)
        assert machine.rounds_at == [clock.now] * 3
        assert pump.rounds == 3 and pump.sent == 6
        assert [f[2] for f in links.frames] == [b"round 1"] * 2 + [b"round 2"] * 2 + [
            b"round 3"
        ] * 2
        pump.close()

    asyncio.run(scenario())


def test_a_deadline_ahead_of_the_clock_waits_for_it() -> None:
    async def scenario() -> None:
        pump, machine, links, clock, _ = _pump({"a"})
        machine.peers, machine.rounds_left = ["a"], 1
        machine.deadline = clock.now + 3600.0
        pump.flush()
        await _settle()
        assert machine.rounds_at == []
        clock.now += 3600.0  # the fake clock reaches the deadline; the next flush re-arms
        pump.flush()
        await asyncio.wait_for(links.sent.wait(), 10)
        assert machine.rounds_at == [clock.now] and pump.rounds == 1
        pump.close()

    asyncio.run(scenario())


def test_close_cancels_a_pending_round() -> None:
    async def scenario() -> None:
        pump, machine, _, clock, _ = _pump({"a"})
        machine.peers, machine.rounds_left, machine.deadline = ["a"], 1, clock.now
        pump.flush()
        pump.close()
        await _settle()
        assert machine.rounds_at == [] and pump.rounds == 0

    asyncio.run(scenario())


async def _settle() -> None:
    """Return once every timer already due on the loop has run (a zero-delay timer
    scheduled now runs no earlier than those)."""
    done = asyncio.Event()
    asyncio.get_running_loop().call_later(0.0, done.set)
    await done.wait()
