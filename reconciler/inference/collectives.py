"""The seam through which tensor-parallel ranks exchange partial results.

``Collectives`` is what the model needs; ``inprocess.InProcessGroup`` runs N ranks as threads
in one process (tests, benchmarks); the agent provides a network implementation over the peer
links (tensor frames encoded by ``jobs/wire.py``). Every implementation must return the same
bits on every rank: all-reduce sums the contributions in rank order. Tensor-parallel
ranks all-reduce and all-gather; pipeline stages broadcast (one hop from the root).
"""

from __future__ import annotations

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
