"""Loaded model slices kept between jobs, and load progress.

``ShardCache`` keeps the last few ``(model, share)`` slices (default two) so repeated
jobs on the same ring reuse resident weights instead of reading the file again. It is
called from loader threads and serialises loads with a lock (two jobs asking for the
same slice load it once).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from reconciler.inference.config import ModelConfig
from reconciler.inference.kernels import (
    ACTIVATIONS,
    ACTIVATIONS_ENV,
    default_activations,
    default_kernels,
    resolve,
)
from reconciler.inference.kernels.fused import FusedShard
from reconciler.inference.kernels.ggml import installed as ggml_installed
from reconciler.inference.kernels.session import trim_heap
from reconciler.inference.loader import ModelInfo, build_weights, load_model_info, open_source
from reconciler.inference.sharding import RankShare
from reconciler.inference.weights import F32, ShardWeights, TensorSource

Progress = Callable[[float], None]
_Key = tuple[str, int, RankShare, str | None, str | None]  # ..., activations, kernels
K = TypeVar("K")
V = TypeVar("V")


class ShardCache:
    """Bounded LRU of model infos and rank slices."""

    def __init__(
        self,
        capacity: int = 2,
        kernels: str | None = None,
        activations: str | None = None,
        threads: int | None = None,
    ) -> None:
        self.capacity = capacity
        self.kernels, self.activations, self.threads = kernels, activations, threads
        self._lock = threading.Lock()
        self._infos: OrderedDict[tuple[str, int], ModelInfo] = OrderedDict()
        self._shards: OrderedDict[_Key, ShardWeights | FusedShard] = OrderedDict()
        self.loads = 0  # slices read from disk (not served from the cache)

    def info(self, path: Path) -> ModelInfo:
        """Config and tokenizer of a model."""
        key = (str(path), _version(path))
        with self._lock:
            if key not in self._infos:
                self._infos[key] = load_model_info(path)
            return _touch(self._infos, key, self.capacity)

    @property
    def activations_chosen(self) -> bool:
        """Whether the activations were set (by the agent or ``MESHNET_ACTIVATIONS``), so
        a job must not pick them by memory."""
        return self.activations is not None or bool(os.environ.get(ACTIVATIONS_ENV, "").strip())

    def default_activations(self) -> str:
        """The activations a share loads with unless memory decides: the construction's,
        else ``MESHNET_ACTIVATIONS``, else the engine's default."""
        return self.activations or default_activations()

    def default_layout(self) -> str:
        """The layout this agent's settings ask for: ``ggml`` or ``numpy`` when its kernels
        are set to them, else its activations (``int8`` or ``exact``)."""
        kernels = self.kernels or default_kernels()
        return kernels if kernels in ("ggml", "numpy") else self.default_activations()

    def layouts(self, config: ModelConfig) -> tuple[str, ...]:
        """The layouts this cache's kernels can hold ``config``'s model in."""
        kernels = resolve(self.kernels or default_kernels(), config)
        if kernels in ("numpy", "ggml"):
            return (kernels,)
        # ggml installed is enough to cost its layout: loading the library (18 MiB of
        # pages) waits until a share is held in it (an error then if it fails its test)
        return (*ACTIVATIONS, "ggml") if ggml_installed() else ACTIVATIONS

    def release_shards(self) -> None:
        """Forget every kept slice (a job still running on one keeps its own reference):
        a member holding to its offered memory loads one share at a time."""
        with self._lock:
            self._shards.clear()
        trim_heap()

    def resident(self, path: Path, share: RankShare) -> bool:
        """Whether this slice is held already (a job reusing it loads nothing)."""
        with self._lock:
            return any(k[:3] == (str(path), _version(path), share) for k in self._shards)

    def shard(
        self,
        path: Path,
        config: ModelConfig,
        share: RankShare,
        progress: Progress,
        activations: str | None = None,
        layout: str | None = None,
    ) -> ShardWeights | FusedShard:
        """This rank's slice, from the cache or read now (``progress`` gets 0..1), for
        the kernels chosen at construction (default: ``MESHNET_KERNELS`` or auto) and
        ``activations`` (default: the construction's, else ``MESHNET_ACTIVATIONS``), or
        in the ``layout`` memory chose (``exact``, ``int8`` or ``ggml``: see
        ``plans.choose_layout``)."""
        kernels = self.kernels
        if layout == "ggml":
            kernels, activations = "ggml", "int8"
        elif layout is not None:
            activations = layout
        activations = activations or self.activations
        key = (str(path), _version(path), share, activations, kernels)
        with self._lock:
            if key not in self._shards:
                source = CountingSource(open_source(path, config), _reads(config, share), progress)
                counted = resolve(kernels or default_kernels(), config) == "numpy"
                self._shards[key] = build_weights(
                    source, config, share, None if counted else progress,
                    kernels, activations, self.threads,
                )  # fmt: skip
                self.loads += 1
            progress(1.0)
            return _touch(self._shards, key, self.capacity)


def _touch(cache: OrderedDict[K, V], key: K, capacity: int) -> V:
    cache.move_to_end(key)
    while len(cache) > capacity:
        cache.popitem(last=False)
    return cache[key]


def _version(path: Path) -> int:
    """Modification time: a model rewritten in place is loaded again."""
    return path.stat().st_mtime_ns


def _reads(config: ModelConfig, share: RankShare) -> int:
    """Tensor reads ``build_shard`` makes (about): embed, head, norm and 9-12 per layer
    held (a pipeline stage holds some of the layers)."""
    return 3 + len(share.layers(config.n_layers)) * (12 if config.attention_bias else 9)


class CountingSource:
    """A TensorSource that reports the fraction of expected reads done."""

    def __init__(self, inner: TensorSource, expected: int, progress: Progress) -> None:
        self.inner, self.expected, self.progress = inner, max(expected, 1), progress
        self.reads = 0

    def __getattr__(self, name: str) -> Any:
        """Anything else (the raw block access of GGUF sources) from the inner source."""
        return getattr(self.inner, name)

    def has(self, name: str) -> bool:
        return self.inner.has(name)

    def rows(self, name: str, start: int, end: int) -> F32:
        return self._count(self.inner.rows(name, start, end))

    def cols(self, name: str, start: int, end: int) -> F32:
        return self._count(self.inner.cols(name, start, end))

    def vector(self, name: str, start: int = 0, end: int | None = None) -> F32:
        return self._count(self.inner.vector(name, start, end))

    def _count(self, a: F32) -> F32:
        self.reads += 1
        self.progress(min(self.reads / self.expected, 0.99))
        return a


def layout_of(weights: ShardWeights | FusedShard) -> str:
    """The layout loaded weights are held in: ``exact``, ``int8``, ``ggml`` or ``numpy``."""
    if isinstance(weights, FusedShard):
        return "int8" if weights.int8 else "exact"
    return weights.kernels
