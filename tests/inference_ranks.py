"""Run several ranks of one model in this process (threads + InProcessGroup).

Used by tests (tensor-parallel and pipeline stages vs single-rank) and the benchmark; the agent runs one rank
per device instead.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from reconciler.inference.config import ModelConfig
from reconciler.inference.inprocess import InProcessGroup, InProcessMember
from reconciler.inference.loader import load_shard
from reconciler.inference.model import Engine
from reconciler.inference.sharding import RankShare, plan_shares, plan_stages

T = TypeVar("T")


def make_engines(
    path: str | Path,
    config: ModelConfig,
    column_ranges: list[tuple[int, int]],
    shard_columns: int,
    cache_len: int | None = None,
    kernels: str | None = None,
    activations: str | None = None,
) -> list[Engine]:
    """One Engine per ring range, wired to a shared InProcessGroup."""
    shares = plan_shares(config, column_ranges, shard_columns)
    return _engines(path, config, shares, cache_len, kernels, activations)


def make_stage_engines(
    path: str | Path,
    config: ModelConfig,
    layer_counts: list[int],
    cache_len: int | None = None,
    kernels: str | None = None,
    activations: str | None = None,
) -> list[Engine]:
    """One pipeline-stage Engine per layer count, wired to a shared InProcessGroup."""
    shares = plan_stages(config, layer_counts)
    return _engines(path, config, shares, cache_len, kernels, activations)


def _engines(
    path: str | Path,
    config: ModelConfig,
    shares: list[RankShare],
    cache_len: int | None,
    kernels: str | None,
    activations: str | None,
) -> list[Engine]:
    members = InProcessGroup(len(shares)).members()
    return [
        Engine(
            config, load_shard(path, config, share, None, kernels, activations), member, cache_len
        )
        for share, member in zip(shares, members, strict=True)
    ]


def run_ranks(engines: list[Engine], fn: Callable[[Engine], T]) -> list[T]:
    """Call ``fn(engine)`` on every rank concurrently; results by rank; re-raise the first error."""
    results: list[T | None] = [None] * len(engines)
    errors: list[BaseException] = []

    def body(rank: int) -> None:
        try:
            results[rank] = fn(engines[rank])
        except BaseException as exc:  # surfaced to the caller below
            errors.append(exc)
            _abort(engines[rank])

    threads = [threading.Thread(target=body, args=(r,)) for r in range(1, len(engines))]
    for t in threads:
        t.start()
    body(0)
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return [r for r in results if r is not None]


def _abort(engine: Engine) -> None:
    """Break the in-process group so the other ranks stop waiting."""
    comm: object = engine.comm
    while hasattr(comm, "inner"):  # Metered, Q80Collectives, ...
        comm = comm.inner
    if isinstance(comm, InProcessMember):
        comm.group.abort()
