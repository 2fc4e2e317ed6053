"""The relay's decisions, sans-IO: reservations, circuits and limits.

The server registers each authenticated TLS client with ``connect(client, node_id,
pool_id)`` (read from its certificate), feeds its bytes to ``receive(client, data,
now)`` and performs the returned outputs: ``Send`` (bytes for a client's queue) and
``Drop`` (close a client). Circuit lifetimes are deadlines: ``get_timer()`` /
``handle_timer(now)``. A member can only reach members of its own pool. Every refusal
is an ERROR frame with a code and a readable message, and is counted in ``counters``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from reconciler.relay.framing import BadFrame, FrameParser, StreamBroken, encode
from reconciler.relay.messages import (
    NO_CIRCUIT,
    RELAY_CIRCUIT_BIT,
    Close,
    Connect,
    Data,
    Error,
    ErrorCode,
    Incoming,
    Message,
    PeerEntry,
    Peers,
    Register,
    Reserve,
    Reserved,
)
from reconciler.relay.messages import Connected as ConnectedMsg
from reconciler.relay.rendezvous import MAX_ENTRIES

End = tuple[int, int]  # (client, circuit id on that client's connection)


@dataclass(frozen=True)
class RelayLimits:
    """What one relay allows (every limit refuses with its own ERROR code)."""

    max_reservations: int = 1024
    max_circuits_per_member: int = 64
    max_circuit_bytes: int = 1 << 30
    max_circuit_seconds: float = 3600.0
    queue_frames: int = 64  # of at most 64 KiB: 4 MiB queued per client at most
    queue_timeout: float = 5.0
    max_connections: int = 1024
    max_connections_per_address: int = 32
    max_connections_per_member: int = 4
    register_interval: float = 1.0


@dataclass(frozen=True)
class Send:
    """Queue ``data`` for ``client``; ``origin`` is the circuit end it came from."""

    client: int
    data: bytes
    origin: End | None = None


@dataclass(frozen=True)
class Drop:
    """Close a client's connection."""

    client: int
    reason: str


Output = Send | Drop


@dataclass
class _Client:
    node_id: str
    pool_id: str
    parser: FrameParser = field(default_factory=FrameParser)
    circuits: set[int] = field(default_factory=set)
    next_incoming: int = 0
    entry: PeerEntry | None = None
    registered_at: float = float("-inf")


@dataclass
class _Circuit:
    a: End
    b: End
    opened: float
    bytes: int = 0

    def other(self, end: End) -> End:
        return self.b if end == self.a else self.a


class RelayCore:
    """Every client, reservation and circuit of one relay."""

    def __init__(self, limits: RelayLimits | None = None) -> None:
        self.limits = limits or RelayLimits()
        self.counters: Counter[str] = Counter()
        self._clients: dict[int, _Client] = {}
        self._reservations: dict[tuple[str, str], int] = {}  # (pool, node) -> client
        self._circuits: dict[End, _Circuit] = {}

    # -- clients -------------------------------------------------------------------

    def connect(self, client: int, node_id: str, pool_id: str) -> None:
        self._clients[client] = _Client(node_id, pool_id)

    def disconnect(self, client: int) -> list[Output]:
        state = self._clients.pop(client, None)
        if state is None:
            return []
        for key, holder in list(self._reservations.items()):
            if holder == client:
                del self._reservations[key]
        out: list[Output] = []
        for cid in list(state.circuits):
            out += self._close_circuit((client, cid), Close(0, "peer disconnected"))
        return out

    def reservation_count(self) -> int:
        return len(self._reservations)

    def circuit_count(self) -> int:
        return len(self._circuits) // 2

    # -- input ---------------------------------------------------------------------

    def receive(self, client: int, data: bytes, now: float) -> list[Output]:
        state = self._clients.get(client)
        if state is None:
            return []
        out: list[Output] = []
        for event in state.parser.feed(data):
            if isinstance(event, StreamBroken):
                self.counters["stream_broken"] += 1
                return [
                    *out,
                    *self._refuse(client, ErrorCode.PROTOCOL, event.reason),
                    Drop(client, event.reason),
                ]
            if isinstance(event, BadFrame):
                self.counters["bad_frame"] += 1
                out += self._refuse(client, ErrorCode.PROTOCOL, event.reason)
            else:
                out += self._handle(client, state, event, now)
        return out

    def _handle(self, client: int, state: _Client, msg: Message, now: float) -> list[Output]:
        if isinstance(msg, Register):
            return self._register(client, state, msg, now)
        if isinstance(msg, Data):
            return self._data((client, msg.circuit_id), msg.payload)
        if isinstance(msg, Reserve):
            return self._reserve(client, state, msg.node_id)
        if isinstance(msg, Connect):
            return self._connect(client, state, msg, now)
        if isinstance(msg, Close):
            return self._close_circuit((client, msg.circuit_id), msg)
        self.counters["unexpected_frame"] += 1
        return self._refuse(client, ErrorCode.PROTOCOL, f"{type(msg).__name__} is sent by relays")

    def _reserve(self, client: int, state: _Client, node_id: str) -> list[Output]:
        if node_id != state.node_id:
            return self._refuse(
                client, ErrorCode.BAD_IDENTITY, f"your certificate is {state.node_id}"
            )
        key = (state.pool_id, node_id)
        if (
            key not in self._reservations
            and len(self._reservations) >= self.limits.max_reservations
        ):
            return self._refuse(
                client, ErrorCode.TOO_MANY_RESERVATIONS,
                f"relay holds its maximum of {self.limits.max_reservations} reservations",
            )  # fmt: skip
        self._reservations[key] = client
        self.counters["reservations"] += 1
        return [Send(client, encode(Reserved(node_id)))]

    def _register(self, client: int, state: _Client, msg: Register, now: float) -> list[Output]:
        """Rendezvous: remember where this member listens (under its certificate's node
        ID), answer with the other registered members of its pool; at most one answer
        per ``register_interval`` per client (an answer is much bigger than a request)."""
        if now - state.registered_at < self.limits.register_interval:
            self.counters["register_too_often"] += 1
            return []
        state.registered_at = now
        state.entry = PeerEntry(state.node_id, msg.name, msg.addresses, msg.memory_bytes, msg.cores)
        self.counters["registrations"] += 1
        others = tuple(
            other.entry for key, other in self._clients.items()
            if key != client and other.entry is not None and other.pool_id == state.pool_id
            and other.entry.node_id != state.node_id
        )  # fmt: skip
        return [Send(client, encode(Peers(others[:MAX_ENTRIES])))]

    def registered(self, pool_id: str) -> list[PeerEntry]:
        """The members registered in a pool (for status pages and tests)."""
        return [
            c.entry for c in self._clients.values() if c.pool_id == pool_id and c.entry is not None
        ]

    def _connect(self, client: int, state: _Client, msg: Connect, now: float) -> list[Output]:
        cid = msg.circuit_id
        problem = self._connect_problem(client, state, msg)
        if problem is not None:
            return self._refuse(client, problem[0], problem[1], cid)
        target = self._reservations[(state.pool_id, msg.target)]
        peer = self._clients[target]
        peer_cid = RELAY_CIRCUIT_BIT | peer.next_incoming
        peer.next_incoming = (peer.next_incoming + 1) % RELAY_CIRCUIT_BIT
        circuit = _Circuit((client, cid), (target, peer_cid), now)
        self._circuits[circuit.a] = self._circuits[circuit.b] = circuit
        state.circuits.add(cid)
        peer.circuits.add(peer_cid)
        self.counters["circuits"] += 1
        return [
            Send(target, encode(Incoming(peer_cid, state.node_id))),
            Send(client, encode(ConnectedMsg(cid))),
        ]

    def _connect_problem(
        self, client: int, state: _Client, msg: Connect
    ) -> tuple[ErrorCode, str] | None:
        if msg.circuit_id & RELAY_CIRCUIT_BIT:
            return ErrorCode.PROTOCOL, "client circuit IDs must have the high bit clear"
        if (client, msg.circuit_id) in self._circuits:
            return ErrorCode.DUPLICATE_CIRCUIT, f"circuit {msg.circuit_id} is already open"
        target = self._reservations.get((state.pool_id, msg.target))
        if target is None or target == client:
            return ErrorCode.UNKNOWN_TARGET, f"no reservation for {msg.target} in your pool"
        limit = self.limits.max_circuits_per_member
        if len(state.circuits) >= limit:
            return ErrorCode.TOO_MANY_CIRCUITS, f"you have the maximum of {limit} circuits"
        if len(self._clients[target].circuits) >= limit:
            return ErrorCode.TOO_MANY_CIRCUITS, f"{msg.target} has the maximum of {limit} circuits"
        return None

    def _data(self, end: End, payload: bytes) -> list[Output]:
        circuit = self._circuits.get(end)
        if circuit is None:
            self.counters["data_unknown_circuit"] += 1  # a race with a close: drop quietly
            return []
        circuit.bytes += len(payload)
        if circuit.bytes > self.limits.max_circuit_bytes:
            message = f"circuit exceeded {self.limits.max_circuit_bytes} bytes"
            return self.abort(end, ErrorCode.CIRCUIT_BYTES_EXCEEDED, message)
        other = circuit.other(end)
        self.counters["data_frames"] += 1
        return [Send(other[0], encode(Data(other[1], payload)), origin=end)]

    # -- closing -------------------------------------------------------------------

    def abort(self, end: End, code: ErrorCode, message: str) -> list[Output]:
        """Close a circuit with an ERROR to both ends (limits, a full queue)."""
        circuit = self._circuits.get(end)
        if circuit is None:
            return []
        self._forget(circuit)
        self.counters[f"abort_{code.name.lower()}"] += 1
        return [
            Send(client, encode(Error(code, cid, message)))
            for client, cid in (circuit.a, circuit.b)
            if client in self._clients
        ]

    def _close_circuit(self, end: End, msg: Close) -> list[Output]:
        circuit = self._circuits.get(end)
        if circuit is None:
            return []
        self._forget(circuit)
        other = circuit.other(end)
        out: list[Output] = []
        if other[0] in self._clients:
            out.append(Send(other[0], encode(Close(other[1], msg.reason))))
        return out

    def _forget(self, circuit: _Circuit) -> None:
        for client, cid in (circuit.a, circuit.b):
            self._circuits.pop((client, cid), None)
            if client in self._clients:
                self._clients[client].circuits.discard(cid)

    def _refuse(
        self, client: int, code: ErrorCode, message: str, cid: int = NO_CIRCUIT
    ) -> list[Output]:
        self.counters[f"refused_{code.name.lower()}"] += 1
        return [Send(client, encode(Error(code, cid, message)))]

    # -- timers --------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """When the oldest circuit reaches its maximum duration."""
        if not self._circuits:
            return None
        return min(c.opened for c in self._circuits.values()) + self.limits.max_circuit_seconds

    def handle_timer(self, now: float) -> list[Output]:
        out: list[Output] = []
        limit = self.limits.max_circuit_seconds
        for end, circuit in list(self._circuits.items()):
            if end == circuit.a and now >= circuit.opened + limit:
                out += self.abort(
                    end, ErrorCode.CIRCUIT_DURATION_EXCEEDED, f"circuit open {limit:g} s"
                )
        return out
