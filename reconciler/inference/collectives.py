"""The seam through which tensor-parallel ranks exchange partial results.

``Collectives`` is what the model needs; ``InProcessGroup`` runs N ranks as threads in one
process (tests, benchmarks); the agent provides a network implementation over the peer
links (tensor frames encoded by ``wire.py``). Every implementation must return the same
bits on every rank: all-reduce sums the contributions in rank order. Tensor-parallel
ranks all-reduce and all-gather; pipeline stages broadcast (one hop from the root).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from reconciler.inference.errors import CollectiveError

Array = NDArray[np.float32]


class Collectives(Protocol):
    """Collective operations over the ranks of one job."""

    @property
    def rank(self) -> int:
        """This member's rank, 0-based."""
        ...

    @property
    def world_size(self) -> int:
        """Number of ranks."""
        ...

    def all_reduce_sum(self, x: Array) -> Array:
        """Element-wise sum of every rank's ``x`` (same shape everywhere), summed in rank order."""
        ...

    def all_gather(self, x: Array) -> list[Array]:
        """Every rank's ``x``, indexed by rank (shapes may differ between ranks)."""
        ...

    def broadcast(self, x: Array, root: int) -> Array:
        """The ``root`` rank's ``x`` on every rank, in one hop; other ranks' ``x`` is ignored
        (pass an empty array). Shapes may differ from one call to the next."""
        ...


class SingleRank:
    """World of one: the oracle configuration."""

    rank = 0
    world_size = 1

    def all_reduce_sum(self, x: Array) -> Array:
        return x

    def all_gather(self, x: Array) -> list[Array]:
        return [x]

    def broadcast(self, x: Array, root: int) -> Array:
        check_root(root, 1)
        return x


def check_root(root: int, world_size: int) -> None:
    """ValueError unless ``root`` is a rank of the group."""
    if not 0 <= root < world_size:
        raise ValueError(f"broadcast root {root} is not a rank of a group of {world_size}")


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


def sum_in_rank_order(parts: list[Array], shape: tuple[int, ...]) -> Array:
    """The all-reduce sum, always added in rank order so every rank gets the same bits."""
    if any(p.shape != shape for p in parts):
        raise CollectiveError(f"all_reduce shapes differ: {[p.shape for p in parts]}")
    total = parts[0].copy()
    for p in parts[1:]:
        total += p
    return total


class Metered:
    """Wraps a Collectives and counts time spent in it and bytes it sends.

    ``bytes_sent`` assumes each rank sends its contribution to every other rank
    ((world_size - 1) * nbytes per call; for a broadcast only the root sends); a network
    implementation may do better. An inner collectives that encodes all-reduce
    contributions (``q80reduce``) tells their size through ``reduce_nbytes(x)``.
    """

    def __init__(self, inner: Collectives, clock: Callable[[], float]) -> None:
        self.inner = inner
        self.rank = inner.rank
        self.world_size = inner.world_size
        self._clock = clock
        self.seconds = 0.0
        self.bytes_sent = 0

    def all_reduce_sum(self, x: Array) -> Array:
        start = self._clock()
        out = self.inner.all_reduce_sum(x)
        size = getattr(self.inner, "reduce_nbytes", None)
        self._count(start, int(size(x)) if callable(size) else x.nbytes)
        return out

    def all_gather(self, x: Array) -> list[Array]:
        start = self._clock()
        out = self.inner.all_gather(x)
        self._count(start, x.nbytes)
        return out

    def broadcast(self, x: Array, root: int) -> Array:
        start = self._clock()
        out = self.inner.broadcast(x, root)
        self._count(start, x.nbytes if root == self.rank else 0)
        return out

    def _count(self, start: float, nbytes: int) -> None:
        self.seconds += self._clock() - start
        self.bytes_sent += nbytes * (self.world_size - 1)
