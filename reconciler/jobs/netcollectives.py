"""Collectives over the network: one all-to-all round per all-reduce or all-gather.

Each call of rank ``r`` sends its contribution once to every other rank (N-1 messages)
and waits for the N-1 contributions of the same call; all-reduce then sums them **in
rank order**, so every rank gets bit-identical results without a second round (no
2(N-1) ring steps). A tensor payload is ``session (u64 LE) | wire frame`` where the wire
frame (``reconciler.jobs.wire``) carries the op and the call's step number.

A broadcast (pipeline stages) is one hop: the root sends its array to every other rank
and each receiver waits for the root's frame only; every rank still counts the call as a
step, so steps stay aligned. A frame from another rank for that step is a protocol
violation (CollectiveError), as is a frame of the wrong op or dtype.

Threads: the engine calls ``all_reduce_sum``/``all_gather`` from its worker thread;
``deliver`` is called from the event loop when a TENSOR frame arrives. A peer can be at
most one step ahead (it needs our contribution to finish a step), so frames of the next
steps are buffered and anything further out is dropped. Pipeline broadcasts pass the
turn from stage to stage, so a root can be up to N - 2 steps ahead of a receiver: the
window is ``max(WINDOW, N)`` steps. A timeout or :meth:`abort`
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

from reconciler.inference.collectives import Array, check_root, sum_in_rank_order
from reconciler.inference.errors import CollectiveError, WireError
from reconciler.jobs.errors import CollectiveTimeout, JobProtocolError
from reconciler.jobs.wire import Frame, Op, decode, encode

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
        self.window = max(WINDOW, len(self.node_ids))
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
        check_root(root, self.world_size)
        start = self.clock()
        self.calls += 1
        if self.world_size == 1:
            return x
        step = self._next_step()
        if root == self._rank:
            self._send_all(encode(Op.BROADCAST, step, x))
            out = x
        else:
            frames = self._wait(step, start + self.timeout, {root})
            forged = sorted(self.node_ids[r] for r in frames if r != root)
            if forged:
                raise CollectiveError(
                    f"step {step}: {', '.join(forged)} sent to a broadcast whose root is "
                    f"{self.node_ids[root]}"
                )
            out = _as_f32(frames[root], Op.BROADCAST, step)
        self.comm_seconds += self.clock() - start
        return out

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
            if not self._step - 1 <= decoded.step < self._step + self.window:
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
        step = self._next_step()
        self._send_all(encode(op, step, x))
        others = set(range(self.world_size)) - {self._rank}
        frames = self._wait(step, start + self.timeout, others)
        parts = [
            x if r == self._rank else _as_f32(frames[r], op, step) for r in range(self.world_size)
        ]
        self.comm_seconds += self.clock() - start
        return parts

    def _next_step(self) -> int:
        """Take the next step number; forget frames of steps already run."""
        with self._cond:
            step = self._step
            self._step += 1
            for old in [s for s in self._inbox if s < step]:
                del self._inbox[old]
            return step

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

    def _wait(self, step: int, deadline: float, expect: set[int]) -> dict[int, Frame]:
        """The frames of ``step`` once those of every rank in ``expect`` are in."""
        with self._cond:
            while True:
                if self._aborted is not None:
                    raise CollectiveError(self._aborted)
                got = self._inbox.get(step, {})
                if expect <= got.keys():
                    return self._inbox.pop(step)
                left = deadline - self.clock()
                if left <= 0:
                    raise self._timeout(step, expect - got.keys())
                self._cond.wait(left)

    def _timeout(self, step: int, missing_ranks: set[int]) -> CollectiveTimeout:
        missing = tuple(self.node_ids[r] for r in sorted(missing_ranks))
        return CollectiveTimeout(
            f"no contribution from {', '.join(missing)} to step {step} within {self.timeout:g} s",
            missing,
        )


def _as_f32(frame: Frame, op: Op, step: int) -> Array:
    if frame.op is not op or frame.array.dtype != np.float32:
        raise CollectiveError(f"step {step}: expected {op.name} float32, got {frame.op.name}")
    return frame.array  # type: ignore[return-value]
