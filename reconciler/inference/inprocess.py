"""Several ranks of one model in one process: collectives between threads (tests and
benchmarks, see tests/inference_ranks.py; the agent runs one rank per device over
``jobs.netcollectives``)."""

from __future__ import annotations

import threading
import time

from reconciler.inference.collectives import Array, check_root, sum_in_rank_order
from reconciler.inference.errors import CollectiveError


class InProcessGroup:
    """Shared state of N in-process ranks; use :meth:`members` to get one handle per rank."""

    def __init__(self, world_size: int, timeout: float = 60.0) -> None:
        self.world_size, self.timeout = world_size, timeout
        self._slots: list[Array | None] = [None] * world_size
        self._barrier = threading.Barrier(world_size, timeout=timeout)
        # broadcasts: call number -> (root, array, readers still to read it)
        self._posts: dict[int, tuple[int, Array, int]] = {}
        self._posted = threading.Condition()
        self._aborted = False

    def members(self) -> list[InProcessMember]:
        """One Collectives handle per rank."""
        return [InProcessMember(self, r) for r in range(self.world_size)]

    def exchange(self, rank: int, x: Array) -> list[Array]:
        """Deposit ``x``, wait for everyone, return all contributions."""
        self._slots[rank] = x
        self._wait()
        out = [s for s in self._slots if s is not None]
        self._wait()  # nobody overwrites a slot before everyone has read it
        if len(out) != self.world_size:
            raise CollectiveError("a rank contributed nothing")
        return out

    def post(self, call: int, rank: int, root: int, x: Array) -> Array:
        """Broadcast number ``call`` (counted by each rank): the root posts ``x`` and goes
        on, as over the network; the other ranks wait for it."""
        with self._posted:
            if rank == root:
                self._posts[call] = (root, x.copy(), self.world_size - 1)
                self._posted.notify_all()
                return x
            deadline = time.monotonic() + self.timeout
            while call not in self._posts:
                left = deadline - time.monotonic()
                if self._aborted or left <= 0:
                    raise CollectiveError(f"no broadcast {call} from rank {root}: group broken")
                self._posted.wait(left)
            posted_root, value, readers = self._posts.pop(call)
            if posted_root != root:
                raise CollectiveError(f"broadcast {call}: root {posted_root}, expected {root}")
            if readers > 1:
                self._posts[call] = (root, value, readers - 1)
            return value.copy()

    def _wait(self) -> None:
        try:
            self._barrier.wait()
        except threading.BrokenBarrierError as exc:
            raise CollectiveError("a rank left the group or timed out") from exc

    def abort(self) -> None:
        """Break the barrier so that every waiting rank raises CollectiveError."""
        self._barrier.abort()
        with self._posted:
            self._aborted = True
            self._posted.notify_all()


class InProcessMember:
    """One rank's handle on an :class:`InProcessGroup`."""

    def __init__(self, group: InProcessGroup, rank: int) -> None:
        self.group = group
        self.rank = rank
        self.world_size = group.world_size
        self._broadcasts = 0  # calls of broadcast so far

    def all_reduce_sum(self, x: Array) -> Array:
        return sum_in_rank_order(self.group.exchange(self.rank, x), x.shape)

    def all_gather(self, x: Array) -> list[Array]:
        return [p.copy() for p in self.group.exchange(self.rank, x)]

    def broadcast(self, x: Array, root: int) -> Array:
        check_root(root, self.world_size)
        call, self._broadcasts = self._broadcasts, self._broadcasts + 1
        return self.group.post(call, self.rank, root, x)
