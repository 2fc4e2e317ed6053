"""Building a :class:`FusedShard`: one rank's share read from the file, packed
(``quant.pack``), and turned into onnxruntime sessions one block at a time, so that the
load's scratch stays bounded (see ``fused`` for what the graphs compute)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from reconciler.inference.config import ModelConfig
from reconciler.inference.kernels.fused import EmbedTable, FusedShard
from reconciler.inference.kernels.parts import Part, col_parts, parts_nbytes, row_parts
from reconciler.inference.kernels.session import map_large_allocations, trim_heap
from reconciler.inference.quant.blocks import F32, FLOAT_TYPES
from reconciler.inference.quant.pack import NBits
from reconciler.inference.sharding import RankShare
from reconciler.inference.weights import TensorSource, release_source

if TYPE_CHECKING:  # onnx is imported only when graphs are built
    from reconciler.inference.kernels.graph import GraphBuilder


HEAD_CHUNK = 65536  # vocabulary rows per LM-head session (fewer calls per token)
LAYERS_PER_GRAPH = 10  # world size 1: fewer calls per token, bounded load scratch
GRAPH_BYTES = 32 << 20  # ... and no more packed weight bytes in one graph: building a
# session copies its weights (proto, then onnxruntime's prepacked copy) for a moment


@dataclass
class _LayerParts:
    attn_norm: F32
    qkv: list[Part]
    bqkv: F32 | None
    o: list[Part]
    o_pad: tuple[int, int]
    ffn_norm: F32
    gu: list[Part]
    down: list[Part]
    down_pad: tuple[int, int]
    q_norm: F32 | None = None  # per-head RMSNorm weights [E] (config.qk_norm)
    k_norm: F32 | None = None
    post_attn_norm: F32 | None = None  # on a block's (all-reduced) output (config.post_norms)
    post_ffn_norm: F32 | None = None


def build_fused(
    source: TensorSource,
    config: ModelConfig,
    share: RankShare,
    int8: bool,
    threads: int,
    progress: Callable[[float], None] | None = None,
) -> FusedShard:
    """Pack one rank's share and create its sessions, one layer at a time (a pipeline
    stage: only its layers, and the embedding, norm and head only where it holds them)."""
    map_large_allocations()
    norm = _vec(source, "norm") if share.has_head else np.zeros(0, np.float32)
    shard = FusedShard(config, share, _embed(source, config, share), norm, int8, threads)
    if share.has_head:
        _head(shard, source, config, share, int8)  # first: its scratch meets no other session
    held = share.layers(config.n_layers)
    if _whole_layers(share):
        _whole_layer_graphs(shard, source, held, progress)
    else:
        _block_graphs(shard, source, held, progress)
    shard.post_norms = [_post_norms(source, config, i) for i in held]  # for the engine
    release_source(source)
    trim_heap()
    if progress is not None:
        progress(1.0)
    return shard


def _whole_layer_graphs(shard: FusedShard, source: TensorSource, held: Sequence[int],
                        progress: Callable[[float], None] | None) -> None:  # fmt: skip
    """Groups of consecutive layers, a graph each (bounded by ``GRAPH_BYTES``)."""
    group: list[tuple[int, _LayerParts]] = []
    for n, i in enumerate(held):
        group.append((i, _read_layer(source, shard.config, shard.share, i, shard.int8)))
        release_source(source)
        if (
            len(group) == LAYERS_PER_GRAPH
            or sum(_nbytes(parts) for _, parts in group) >= GRAPH_BYTES
            or i == held[-1]
        ):
            shard.held += _layer_graphs(shard, group)
            group = []
            trim_heap()
        if progress is not None:
            progress((n + 1) / (len(held) + 1))


def _block_graphs(shard: FusedShard, source: TensorSource, held: Sequence[int],
                  progress: Callable[[float], None] | None) -> None:  # fmt: skip
    """Two graphs per layer (attention, MLP), every MLP first, then every attention block.

    Creating a session holds a block's weights twice for a moment (ours, and the copy
    onnxruntime prepacks from them), so the process peaks at what it already holds plus
    the block being built. Small blocks last: that moment meets only an attention block
    (a few MiB) on top of the whole share, never an MLP block."""
    steps = [(i, block) for block in ("mlp", "attn") for i in held]
    for n, (i, block) in enumerate(steps):
        parts = _read_layer(source, shard.config, shard.share, i, shard.int8, block)
        release_source(source)
        shard.held += _layer_graphs(shard, [(i, parts)])
        del parts
        trim_heap()
        if progress is not None:
            progress((n + 1) / (len(steps) + 1))


def _whole_layers(share: RankShare) -> bool:
    """Whether the share holds whole layers (one rank, or a pipeline stage): no all-reduce
    inside a layer, so consecutive layers share a graph."""
    return share.world_size == 1 or share.pipelined


def _nbytes(layer: _LayerParts) -> int:
    """Packed weight bytes of one layer's matrices."""
    return sum(parts_nbytes(p) for p in (layer.qkv, layer.o, layer.gu, layer.down))


def _layer_graphs(shard: FusedShard, group: list[tuple[int, _LayerParts]]) -> int:
    """Whole layers: one graph for the group of layers. Otherwise two per layer."""
    from reconciler.inference.kernels.graph import GraphBuilder

    cfg, share = shard.config, shard.share
    d = cfg.dim
    if _whole_layers(share):
        g = GraphBuilder(shard.int8)
        x = g.input("x", d)
        for i, p in group:
            x = g.add(x, _post(g, _attn_block(g, x, p, cfg, share, i), p.post_attn_norm, cfg))
            x = g.add(x, _post(g, _mlp(g, x, p, cfg), p.post_ffn_norm, cfg))
        if group[-1][0] == cfg.n_layers - 1:
            x = g.rms_norm(x, shard.norm, cfg.norm_eps)
        key = f"layers{group[0][0]}"
        g.output(x, "x_out", d)
        shard.add(key, g)
        shard.groups.append(key)
    else:  # a rank may hold no heads (or no MLP columns): it then adds zeros
        for i, p in group:
            if p.qkv:
                g = GraphBuilder(shard.int8)
                g.output(_attn_block(g, g.input("x", d), p, cfg, share, i), "y", d)
                shard.add(f"attn{i}", g)
            if p.gu:
                g = GraphBuilder(shard.int8)
                g.output(_mlp(g, g.input("x", d), p, cfg), "y", d)
                shard.add(f"mlp{i}", g)
    return sum(_nbytes(p) for _i, p in group)


def _post(g: GraphBuilder, y: str, weight: F32 | None, cfg: ModelConfig) -> str:
    return y if weight is None else g.rms_norm(y, weight, cfg.norm_eps)


def _attn_block(
    g: GraphBuilder, x: str, p: _LayerParts, cfg: ModelConfig, share: RankShare, i: int
) -> str:
    """norm -> QKV -> RoPE + cache + attention -> O (this rank's partial sum)."""
    e, hl, kl = cfg.head_dim, share.n_heads, share.n_kv_heads
    qkv = g.linear(g.rms_norm(x, p.attn_norm, cfg.norm_eps), p.qkv, p.bqkv)
    if p.q_norm is not None and p.k_norm is not None:
        qkv = g.head_norms(qkv, [(hl, p.q_norm), (kl, p.k_norm), (kl, None)], e, cfg.norm_eps)
    scale = getattr(cfg, "attn_scale", None)
    attrs = {} if scale is None else {"scale": float(scale)}
    window = cfg.sliding_window if cfg.layer_is_sliding(i) else 0
    att = g.attention(qkv, hl, kl, e, i, window, **attrs)
    return g.linear(_pad(g, att, p.o_pad), p.o)


def _mlp(g: GraphBuilder, x: str, p: _LayerParts, cfg: ModelConfig) -> str:
    h = g.rms_norm(x, p.ffn_norm, cfg.norm_eps)
    f = _rows(p.gu) // 2
    gu = g.linear(h, p.gu)
    act = g.gelu_tanh_mul if getattr(cfg, "activation", "silu") == "gelu_tanh" else g.silu_mul
    return g.linear(_pad(g, act(gu, f), p.down_pad), p.down)


def _pad(g: GraphBuilder, x: str, pad: tuple[int, int]) -> str:
    if pad == (0, 0):
        return x
    pads = g.const(np.array([0, pad[0], 0, pad[1]], dtype=np.int64), "pads")
    return g.op("Pad", [x, pads])


def _rows(parts: list[Part]) -> int:
    return sum(p.n if isinstance(p, NBits) else int(p.shape[0]) for p in parts)


def _read_layer(
    source: TensorSource, cfg: ModelConfig, share: RankShare, i: int, int8: bool,
    block: str = "both",
) -> _LayerParts:  # fmt: skip
    """Layer ``i``'s parts: both blocks, or only ``attn`` or ``mlp`` (the other empty)."""
    parts = _LayerParts(_vec(source, f"{i}.attn_norm"), [], None, [], (0, 0),
                        _vec(source, f"{i}.ffn_norm"), [], [], (0, 0))  # fmt: skip
    if block != "mlp":
        _read_attn(source, cfg, share, i, int8, parts)
    if block != "attn":
        f0, f1 = share.ffn_start, share.ffn_end
        parts.gu = row_parts(source, [(f"{i}.gate", f0, f1), (f"{i}.up", f0, f1)], int8)
        release_source(source)  # after each matrix: the file's pages are the load's largest scratch
        if f1 > f0:
            parts.down, before, after = col_parts(source, f"{i}.down", f0, f1, int8)
            parts.down_pad = (before, after)
    parts.post_attn_norm, parts.post_ffn_norm = _post_norms(source, cfg, i)
    return parts


def _read_attn(source: TensorSource, cfg: ModelConfig, share: RankShare, i: int, int8: bool,
               parts: _LayerParts) -> None:  # fmt: skip
    e = cfg.head_dim
    q0, q1 = share.head_start * e, share.head_end * e
    k0, k1 = share.kv_start * e, share.kv_end * e
    parts.qkv = row_parts(
        source, [(f"{i}.q", q0, q1), (f"{i}.k", k0, k1), (f"{i}.v", k0, k1)], int8
    )
    release_source(source)
    if source.has(f"{i}.q_bias"):
        spans = (("q", q0, q1), ("k", k0, k1), ("v", k0, k1))
        parts.bqkv = np.concatenate([source.vector(f"{i}.{n}_bias", a, b) for n, a, b in spans])
    if q1 > q0:
        parts.o, before, after = col_parts(source, f"{i}.o", q0, q1, int8)
        parts.o_pad = (before, after)
    release_source(source)
    if getattr(cfg, "qk_norm", False):
        parts.q_norm, parts.k_norm = _vec(source, f"{i}.q_norm"), _vec(source, f"{i}.k_norm")


def _post_norms(source: TensorSource, cfg: ModelConfig, i: int) -> tuple[F32 | None, F32 | None]:
    """Layer ``i``'s (post-attention, post-MLP) norm weights, where the model has them."""
    if not getattr(cfg, "post_norms", False):
        return None, None
    return _vec(source, f"{i}.post_attn_norm"), _vec(source, f"{i}.post_ffn_norm")


def _head(
    shard: FusedShard, source: TensorSource, cfg: ModelConfig, share: RankShare, int8: bool
) -> None:
    from reconciler.inference.kernels.graph import GraphBuilder

    vs, ve = share.vocab_start, share.vocab_end
    name = "embed" if cfg.tie_embeddings or not source.has("lm_head") else "lm_head"
    for start in range(vs, ve, HEAD_CHUNK):  # one session per chunk: bounded load scratch
        end = min(start + HEAD_CHUNK, ve)
        parts = row_parts(source, [(name, start, end)], int8)
        release_source(source)  # the file's pages of these rows, before the session copies them
        g = GraphBuilder(int8)
        g.output(g.linear(g.input("h", cfg.dim), parts), "logits", end - start)
        shard.held += parts_nbytes(parts)
        del parts
        key = f"head{len(shard.heads)}"
        shard.add(key, g)
        shard.heads.append(key)
        del g
        release_source(source)
        trim_heap()


def _embed(source: TensorSource, config: ModelConfig, share: RankShare) -> EmbedTable:
    if not share.has_embed:
        return EmbedTable(np.zeros((0, config.dim), np.float32), None)
    vs, ve = share.vocab_start, share.vocab_end
    if hasattr(source, "raw_rows"):
        raw: Any = source
        qtype = raw.qtype("embed")
        if qtype not in FLOAT_TYPES:
            return EmbedTable(raw.raw_rows("embed", vs, ve), qtype)
    return EmbedTable(np.ascontiguousarray(source.rows("embed", vs, ve), np.float32), None)


def _vec(source: TensorSource, name: str) -> F32:
    return np.ascontiguousarray(source.vector(name), dtype=np.float32)
