"""Collectives over the network: one all-to-all round per all-reduce or all-gather.

Each call of rank ``r`` sends its contribution once to every other rank (N-1 messages)
and waits for the N-1 contributions of the same call; all-reduce then sums them **in
rank order**, so every rank gets bit-identical results without a second round (no
2(N-1) ring steps). A tensor payload is ``session (u64 LE) | wire frame`` where the wire
frame (``reconciler.inference.wire``) carries the op and the call's step number.

Threads: the engine calls ``all_reduce_sum``/``all_gather`` from its worker thread;
``deliver`` is called from the event loop when a TENSOR frame arrives. A peer can be at
most one step ahead (it needs our contribution to finish a step), so frames of the next
steps are buffered and anything further out is dropped. A timeout or :meth:`abort`
raises CollectiveError in the waiting thread: a lost member fails a job, never hangs it.
"""

from __future__ import annotations

import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Protocol

import numpy as np

from reconciler.inference.collectives import Array, sum_in_rank_order
from reconciler.inference.errors import CollectiveError, WireError
from reconciler.inference.wire import Frame, Op, decode, encode
from reconciler.jobs.errors import CollectiveTimeout, JobProtocolError

SESSION = struct.Struct("<Q")
DEFAULT_TIMEOUT = 8.0
WINDOW = 2  # steps ahead of ours that may be buffered


class TensorSender(Protocol):
    """Sends one tensor payload to a node; called from a worker thread, must not block long."""

    def send(self, node_id: str, payload: bytes) -> None:
        """Queue ``payload`` for ``node_id`` (raise ConnectionError when it cannot)."""
        ...


def split_session(payload: bytes) -> tuple[int, bytes]:
    """(session, wire frame) of a tensor payload."""
    if len(payload) < SESSION.size:
        raise JobProtocolError(f"tensor payload of {len(payload)} bytes")
    return SESSION.unpack_from(payload)[0], payload[SESSION.size :]


class NetworkCollectives:
    """One rank's collectives for one job session (implements ``Collectives``)."""

    def __init__(
        self,
        session: int,
        rank: int,
        node_ids: list[str],
        sender: TensorSender,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.session = session
        self._rank = rank
        self.node_ids = list(node_ids)
        self._ranks = {node: r for r, node in enumerate(self.node_ids)}
        self.sender, self.timeout, self.clock = sender, timeout, clock
        self._cond = threading.Condition()
        self._inbox: dict[int, dict[int, Frame]] = {}
        self._step = 0  # next step this rank will run
        self._aborted: str | None = None
        self.bytes_sent = 0
        self.messages_sent = 0
        self.calls = 0
        self.comm_seconds = 0.0
        self.dropped: Counter[str] = Counter()

    @property
    def rank(self) -> int:
        return self._rank

    @property
    def world_size(self) -> int:
        return len(self.node_ids)

    def all_reduce_sum(self, x: Array) -> Array:
        return sum_in_rank_order(self._exchange(Op.ALL_REDUCE_SUM, x), x.shape)

    def all_gather(self, x: Array) -> list[Array]:
        return self._exchange(Op.ALL_GATHER, x)

    def broadcast(self, x: Array, root: int) -> Array:
        """The ``root`` rank's ``x`` on every rank: the root sends it to every other rank
        (one hop, an ALL_GATHER frame) and waits for nothing; the others wait for it."""
        if not 0 <= root < self.world_size:
            raise ValueError(f"broadcast root {root} is not a rank of {self.world_size}")
        start = self.clock()
        self.calls += 1
        if self.world_size == 1:
            return x
        with self._cond:
            step = self._step
            self._step += 1
        if root == self._rank:
            self._send_all(encode(Op.ALL_GATHER, step, x))
            self.comm_seconds += self.clock() - start
            return x
        frames = self._wait(step, start + self.timeout, {root})
        self.comm_seconds += self.clock() - start
        return _as_f32(frames[root], Op.ALL_GATHER, step)

    def abort(self, reason: str) -> None:
        """Make the current and every later call raise CollectiveError(reason)."""
        with self._cond:
            self._aborted = self._aborted or reason
            self._cond.notify_all()

    def deliver(self, from_node: str, frame: bytes) -> bool:
        """Hand over a contribution (event-loop thread); False when it was dropped."""
        rank = self._ranks.get(from_node)
        if rank is None or rank == self._rank:
            return self._drop("unknown-sender")
        try:
            decoded = decode(frame)
        except WireError:
            return self._drop("bad-frame")
        with self._cond:
            if not self._step - 1 <= decoded.step < self._step + WINDOW:
                return self._drop("step-out-of-window")
            slot = self._inbox.setdefault(decoded.step, {})
            if rank in slot:
                return self._drop("duplicate")
            slot[rank] = decoded
            self._cond.notify_all()
        return True

    def _drop(self, reason: str) -> bool:
        self.dropped[reason] += 1
        return False

    def _exchange(self, op: Op, x: Array) -> list[Array]:
        start = self.clock()
        self.calls += 1
        if self.world_size == 1:
            return [x]
        with self._cond:
            step = self._step
            self._step += 1
        self._send_all(encode(op, step, x))
        others = set(range(self.world_size)) - {self._rank}
        frames = self._wait(step, start + self.timeout, others)
        parts = [
            x if r == self._rank else _as_f32(frames[r], op, step) for r in range(self.world_size)
        ]
        self.comm_seconds += self.clock() - start
        return parts

    def _send_all(self, frame: bytes) -> None:
        payload = SESSION.pack(self.session) + frame
        for r, node in enumerate(self.node_ids):
            if r == self._rank:
                continue
            try:
                self.sender.send(node, payload)
            except (ConnectionError, OSError, RuntimeError) as exc:
                raise CollectiveError(f"cannot send to {node}: {exc}") from exc
            self.bytes_sent += len(payload)
            self.messages_sent += 1

    def _wait(self, step: int, deadline: float, ranks: set[int]) -> dict[int, Frame]:
        with self._cond:
            while True:
                if self._aborted is not None:
                    raise CollectiveError(self._aborted)
                got = self._inbox.get(step, {})
                if ranks <= got.keys():
                    return self._inbox.pop(step)
                left = deadline - self.clock()
                if left <= 0:
                    raise self._timeout(step, got, ranks)
                self._cond.wait(left)

    def _timeout(self, step: int, got: dict[int, Frame], ranks: set[int]) -> CollectiveTimeout:
        missing = tuple(n for r, n in enumerate(self.node_ids) if r in ranks and r not in got)
        return CollectiveTimeout(
            f"no contribution from {', '.join(missing)} to step {step} within {self.timeout:g} s",
            missing,
        )


def _as_f32(frame: Frame, op: Op, step: int) -> Array:
    if frame.op is not op or frame.array.dtype != np.float32:
        raise CollectiveError(f"step {step}: expected {op.name} float32, got {frame.op.name}")
    return frame.array  # type: ignore[return-value]
