"""Building a rank's share for the ggml kernels: every matrix kept as the file stores it.

The numpy forward pass runs unchanged around the matrices (``weights.matmul``): each
matrix is a :class:`~reconciler.inference.kernels.blockmatrix.BlockMatrix` over the
share's rows (Q/K/V and gate/up concatenated, a part per run of one format), and the
embedding stays quantized (rows dequantized on lookup; a tied LM head and the embedding
share one copy). Sources without stored blocks (Hugging Face folders) give float32.
Weights held: the share's bytes in the file (1.0x), plus float32 norm vectors.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
from gguf import GGMLQuantizationType as Q
from numpy.typing import NDArray

from reconciler.inference.config import ModelConfig
from reconciler.inference.kernels.blockmatrix import BlockMatrix, aligned_concat, aligned_copy
from reconciler.inference.kernels.fused import EmbedTable
from reconciler.inference.kernels.session import map_large_allocations, trim_heap
from reconciler.inference.sharding import RankShare
from reconciler.inference.weights import (
    F32,
    LayerWeights,
    Matrix,
    ShardWeights,
    TensorSource,
    read_layers,
    release_source,
)

_VALUES = (Q.F32, Q.F16)  # stored as numbers (BF16 is stored as bytes)


@functools.cache
def single_threaded_blas() -> None:
    """numpy's BLAS on one thread, for this process (once).

    The ggml kernels run the heavy products on their own threads; numpy's BLAS is left
    with attention and small products, and its idle workers spin after each call, taking
    the cores ggml's threads need: a 64-token prompt on the demo model took 0.8-0.9 s with
    two BLAS threads and 0.32-0.36 s with one."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


def _raw(source: TensorSource) -> Any:
    return source if hasattr(source, "raw_rows") else None


class _Reader:
    """Matrices of one share, as stored where the source has blocks, else float32."""

    def __init__(self, source: TensorSource, threads: int) -> None:
        self.source, self.raw, self.threads = source, _raw(source), threads

    def rows(self, items: list[tuple[str, int, int]], width: int) -> Matrix:
        """The row-concatenation of ``(name, start, end)`` row ranges of ``width`` columns."""
        items = [(n, a, b) for n, a, b in items if b > a]
        if not items:  # a rank holding none of these rows
            return np.zeros((0, width), np.float32)
        if self.raw is None:
            return np.ascontiguousarray(
                np.concatenate([self.source.rows(n, a, b) for n, a, b in items]), np.float32
            )
        runs: list[tuple[list[NDArray[Any]], Q]] = []  # one part per run of a format
        for name, start, end in items:
            data, qtype = self.raw.raw_rows(name, start, end), self.raw.qtype(name)
            if runs and runs[-1][1] == qtype:
                runs[-1][0].append(data)
            else:
                runs.append(([data], qtype))
        parts = [(aligned_concat(arrays), qtype) for arrays, qtype in runs]
        matrix = BlockMatrix(parts, self.threads)
        release_source(self.source)
        return matrix

    def cols(self, name: str, start: int, end: int, rows: int) -> Matrix:
        """Input columns ``[start, end)`` of every one of ``rows`` rows."""
        if end <= start:  # a rank holding none of these columns adds zeros
            return np.zeros((rows, 0), np.float32)
        if self.raw is None:
            return np.ascontiguousarray(self.source.cols(name, start, end), np.float32)
        data, before, after = self.raw.raw_cols(name, start, end)
        part = (aligned_copy(data), self.raw.qtype(name))
        matrix = BlockMatrix([part], self.threads, (before, after))
        release_source(self.source)
        return matrix

    def vector(self, name: str) -> F32:
        return np.ascontiguousarray(self.source.vector(name), dtype=np.float32)


def build_block_shard(
    source: TensorSource,
    config: ModelConfig,
    share: RankShare,
    threads: int,
    progress: Callable[[float], None] | None = None,
) -> ShardWeights:
    """Read one rank's share for the ggml kernels (a pipeline stage: only its layers,
    and the embedding, norm and head only where it holds them)."""
    map_large_allocations()  # each matrix its own mapping: nothing stays in the heap
    single_threaded_blas()
    read = _Reader(source, threads)
    vs, ve = share.vocab_start, share.vocab_end
    tied = config.tie_embeddings or not source.has("lm_head")
    head: Matrix = np.zeros((0, config.dim), np.float32)
    if share.has_head and ve > vs:
        head = read.rows([("embed" if tied else "lm_head", vs, ve)], config.dim)
    embed = _embed(read, config, share, head if tied else None)
    norm = read.vector("norm") if share.has_head else np.zeros(0, np.float32)
    layers = read_layers(config, share, lambda i: _layer(read, config, share, i), progress)
    trim_heap()
    return ShardWeights(share, embed, head, norm, layers, kernels="ggml")


def _embed(read: _Reader, config: ModelConfig, share: RankShare, head: Matrix | None) -> Any:
    """The embedding rows: the tied head's own copy where it is one part, else the
    file's (mapped, dequantized on lookup)."""
    if not share.has_embed:
        return np.zeros((0, config.dim), np.float32)
    if isinstance(head, BlockMatrix) and len(head.parts) == 1:
        rows = head.parts[0]
        return EmbedTable(rows, head.qtypes[0] if rows.dtype == np.uint8 else None)
    vs, ve = share.vocab_start, share.vocab_end
    if read.raw is not None:  # the file's mapped rows, read on lookup
        qtype = read.raw.qtype("embed")
        return EmbedTable(read.raw.raw_rows("embed", vs, ve), None if qtype in _VALUES else qtype)
    return np.ascontiguousarray(read.source.rows("embed", vs, ve), np.float32)


def _layer(read: _Reader, config: ModelConfig, share: RankShare, i: int) -> LayerWeights:
    e, d = config.head_dim, config.dim
    q0, q1 = share.head_start * e, share.head_end * e
    k0, k1 = share.kv_start * e, share.kv_end * e
    f0, f1 = share.ffn_start, share.ffn_end
    bqkv = None
    if read.source.has(f"{i}.q_bias"):
        spans = (("q", q0, q1), ("k", k0, k1), ("v", k0, k1))
        bqkv = np.concatenate([read.source.vector(f"{i}.{n}_bias", a, b) for n, a, b in spans])

    def vec(name: str, wanted: bool) -> F32 | None:
        return read.vector(f"{i}.{name}") if wanted else None

    return LayerWeights(
        attn_norm=read.vector(f"{i}.attn_norm"),
        wqkv=read.rows([(f"{i}.q", q0, q1), (f"{i}.k", k0, k1), (f"{i}.v", k0, k1)], d),
        bqkv=None if bqkv is None else np.ascontiguousarray(bqkv, np.float32),
        wo=read.cols(f"{i}.o", q0, q1, d),
        ffn_norm=read.vector(f"{i}.ffn_norm"),
        wgu=read.rows([(f"{i}.gate", f0, f1), (f"{i}.up", f0, f1)], d),
        wdown=read.cols(f"{i}.down", f0, f1, d),
        q_norm=vec("q_norm", config.qk_norm),
        k_norm=vec("k_norm", config.qk_norm),
        post_attn_norm=vec("post_attn_norm", config.post_norms),
        post_ffn_norm=vec("post_ffn_norm", config.post_norms),
    )
