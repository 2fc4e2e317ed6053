"""The onnxruntime backend: a rank's share as fused graphs over quantized weights.

One session per block of work between two points where numpy (attention, KV cache) or
the network (all-reduce) must run:

- world size 1: ``first`` (norm + QKV of layer 0), then per layer ``layer i``
  (O + residual + norm + MLP + residual + next layer's norm + QKV; the last layer ends
  with the final norm instead), and ``head`` (LM head): L + 2 calls per token.
- world size N > 1, per layer: ``attn_in`` (norm + QKV), ``attn_out`` (O, partial sum),
  ``mlp`` (norm + MLP, partial sum), each all-reduced by the caller; then ``head``.

Weights live only inside the sessions (packed by ``quant.pack``), the embedding stays as
stored in the file (rows dequantized on lookup) and the norms are float32 vectors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gguf
import numpy as np
from numpy.typing import NDArray

from reconciler.inference.config import ModelConfig
from reconciler.inference.kernels.parts import Part, col_parts, parts_nbytes, row_parts
from reconciler.inference.kernels.session import make_session, trim_heap
from reconciler.inference.quant.blocks import F32, FLOAT_TYPES, dequantize
from reconciler.inference.quant.pack import NBits
from reconciler.inference.sharding import RankShare
from reconciler.inference.weights import TensorSource

if TYPE_CHECKING:  # onnx is imported only when graphs are built
    from reconciler.inference.kernels.graph import GraphBuilder


HEAD_CHUNK = 8192  # vocabulary rows per LM-head session


class EmbedTable:
    """Embedding rows as stored (quantized or float); ``table[ids]`` dequantizes rows."""

    def __init__(self, rows: NDArray[Any], qtype: gguf.GGMLQuantizationType | None) -> None:
        self.rows, self.qtype = rows, qtype

    def __getitem__(self, ids: NDArray[np.int64]) -> F32:
        picked = np.asarray(self.rows[ids])
        if self.qtype is None:
            return picked.astype(np.float32)
        return dequantize(picked, self.qtype)

    @property
    def nbytes(self) -> int:
        """Bytes of the rows (a view of the file's memory map: paged in on use)."""
        return int(self.rows.nbytes)


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


class FusedShard:
    """Everything one rank holds for the onnxruntime backend (see the module docstring)."""

    def __init__(self, config: ModelConfig, share: RankShare, embed: EmbedTable, norm: F32,
                 int8: bool, threads: int) -> None:  # fmt: skip
        self.config, self.share, self.embed, self.norm = config, share, embed, norm
        self.int8, self.threads = int8, threads
        self.sessions: dict[str, Any] = {}
        self._keep: list[Any] = []  # weights a session still reads (see make_session)
        self.heads: list[str] = []  # LM-head sessions, in vocabulary order
        self.held = 0  # bytes of packed weights handed to the sessions

    # -- running ---------------------------------------------------------------------

    def _run(self, key: str, feeds: dict[str, F32]) -> list[F32]:
        out: list[F32] = self.sessions[key].run(None, feeds)
        return out

    def first(self, x: F32) -> F32:
        """Layer 0's QKV from the embeddings [T, D] (world size 1)."""
        return self._run("first", {"x": x})[0]

    def layer(self, i: int, att: F32, x: F32) -> tuple[F32, F32]:
        """(new residual, next layer's QKV) — or (final-normed hidden, unused) for the
        last layer — from layer ``i``'s attention output (world size 1)."""
        out = self._run(f"layer{i}", {"att": att, "x": x})
        return out[0], out[-1]

    def attn_in(self, i: int, x: F32) -> F32:
        """QKV of layer ``i`` (world size > 1; a rank without heads gets [T, 0])."""
        if f"attn_in{i}" not in self.sessions:
            return np.zeros((x.shape[0], 0), dtype=np.float32)
        return self._run(f"attn_in{i}", {"x": x})[0]

    def attn_out(self, i: int, att: F32) -> F32:
        """This rank's partial O projection [T, D] (world size > 1)."""
        if f"attn_out{i}" not in self.sessions:
            return np.zeros((att.shape[0], self.config.dim), dtype=np.float32)
        return self._run(f"attn_out{i}", {"att": att})[0]

    def mlp(self, i: int, x: F32) -> F32:
        """This rank's partial MLP output [T, D] (world size > 1)."""
        if f"mlp{i}" not in self.sessions:
            return np.zeros_like(x)
        return self._run(f"mlp{i}", {"x": x})[0]

    def head(self, h: F32) -> F32:
        """Logits of this rank's vocabulary rows [T, Vl]."""
        outs = [self._run(key, {"h": h})[0] for key in self.heads]
        if len(outs) == 1:
            return outs[0]
        return np.concatenate(outs, axis=-1) if outs else np.zeros((h.shape[0], 0), np.float32)

    def nbytes(self) -> int:
        """Bytes of weights held (packed matrices and norms; the embedding is mapped)."""
        return self.held + int(self.norm.nbytes)

    # -- building --------------------------------------------------------------------

    def add(self, key: str, g: GraphBuilder) -> None:
        """Create the session for a built graph."""
        self.sessions[key], keep = make_session(g.model_bytes(), self.threads, g.external)
        self._keep.extend(keep)


def build_fused(
    source: TensorSource,
    config: ModelConfig,
    share: RankShare,
    int8: bool,
    threads: int,
    progress: Callable[[float], None] | None = None,
) -> FusedShard:
    """Pack one rank's share and create its sessions, one layer at a time."""
    from reconciler.inference.kernels.graph import GraphBuilder

    shard = FusedShard(config, share, _embed(source, share), _vec(source, "norm"), int8, threads)
    layers = config.n_layers
    single = share.world_size == 1
    cur = _read_layer(source, config, share, 0, int8)
    if single:
        g = GraphBuilder(int8)
        g.output(_qkv(g, g.input("x", config.dim), cur, config), "qkv", _qkv_width(config, share))
        shard.add("first", g)
    for i in range(layers):
        nxt = _read_layer(source, config, share, i + 1, int8) if i + 1 < layers else None
        shard.held += _layer_graphs(shard, cur, nxt, i)
        cur = nxt  # type: ignore[assignment]
        _release(source)
        if i % 8 == 7:
            trim_heap()
        if progress is not None:
            progress((i + 1) / (layers + 1))
    _head(shard, source, config, share, int8)
    _release(source)
    trim_heap()
    if progress is not None:
        progress(1.0)
    return shard


def _layer_graphs(shard: FusedShard, cur: _LayerParts, nxt: _LayerParts | None, i: int) -> int:
    from reconciler.inference.kernels.graph import GraphBuilder

    cfg, share = shard.config, shard.share
    d, width = cfg.dim, share.n_heads * cfg.head_dim
    if share.world_size == 1:
        g = GraphBuilder(shard.int8)
        x, att = g.input("x", d), g.input("att", width)
        x = g.add(x, _o(g, att, cur))
        x = g.add(x, _mlp(g, x, cur, cfg))
        if nxt is None:
            g.output(g.rms_norm(x, shard.norm, cfg.norm_eps), "h", d)
        else:
            g.output(x, "x_out", d)
            g.output(_qkv(g, x, nxt, cfg), "qkv", _qkv_width(cfg, share))
        shard.add(f"layer{i}", g)
    else:  # a rank may hold no heads (or no MLP columns): it then adds zeros
        if cur.qkv:
            g = GraphBuilder(shard.int8)
            g.output(_qkv(g, g.input("x", d), cur, cfg), "qkv", _qkv_width(cfg, share))
            shard.add(f"attn_in{i}", g)
            g = GraphBuilder(shard.int8)
            g.output(_o(g, g.input("att", width), cur), "y", d)
            shard.add(f"attn_out{i}", g)
        if cur.gu:
            g = GraphBuilder(shard.int8)
            g.output(_mlp(g, g.input("x", d), cur, cfg), "y", d)
            shard.add(f"mlp{i}", g)
    return sum(parts_nbytes(p) for p in (cur.qkv, cur.o, cur.gu, cur.down))


def _qkv_width(cfg: ModelConfig, share: RankShare) -> int:
    return (share.n_heads + 2 * share.n_kv_heads) * cfg.head_dim


def _qkv(g: GraphBuilder, x: str, p: _LayerParts, cfg: ModelConfig) -> str:
    return g.linear(g.rms_norm(x, p.attn_norm, cfg.norm_eps), p.qkv, p.bqkv)


def _o(g: GraphBuilder, att: str, p: _LayerParts) -> str:
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
    source: TensorSource, cfg: ModelConfig, share: RankShare, i: int, int8: bool
) -> _LayerParts:
    e = cfg.head_dim
    q0, q1 = share.head_start * e, share.head_end * e
    k0, k1 = share.kv_start * e, share.kv_end * e
    f0, f1 = share.ffn_start, share.ffn_end
    qkv = row_parts(source, [(f"{i}.q", q0, q1), (f"{i}.k", k0, k1), (f"{i}.v", k0, k1)], int8)
    bqkv = None
    if source.has(f"{i}.q_bias"):
        spans = (("q", q0, q1), ("k", k0, k1), ("v", k0, k1))
        bqkv = np.concatenate([source.vector(f"{i}.{n}_bias", a, b) for n, a, b in spans])
    o, o0, o1 = col_parts(source, f"{i}.o", q0, q1, int8) if q1 > q0 else ([], 0, 0)
    gu = row_parts(source, [(f"{i}.gate", f0, f1), (f"{i}.up", f0, f1)], int8)
    down, d0, d1 = col_parts(source, f"{i}.down", f0, f1, int8) if f1 > f0 else ([], 0, 0)
    return _LayerParts(_vec(source, f"{i}.attn_norm"), qkv, bqkv, o, (o0, o1),
                       _vec(source, f"{i}.ffn_norm"), gu, down, (d0, d1))  # fmt: skip


def _head(
    shard: FusedShard, source: TensorSource, cfg: ModelConfig, share: RankShare, int8: bool
) -> None:
    from reconciler.inference.kernels.graph import GraphBuilder

    vs, ve = share.vocab_start, share.vocab_end
    name = "embed" if cfg.tie_embeddings or not source.has("lm_head") else "lm_head"
    for start in range(vs, ve, HEAD_CHUNK):  # one session per chunk: bounded load scratch
        end = min(start + HEAD_CHUNK, ve)
        parts = row_parts(source, [(name, start, end)], int8)
        g = GraphBuilder(int8)
        g.output(g.linear(g.input("h", cfg.dim), parts), "logits", end - start)
        shard.held += parts_nbytes(parts)
        del parts
        key = f"head{len(shard.heads)}"
        shard.add(key, g)
        shard.heads.append(key)
        del g
        _release(source)
        trim_heap()


def _release(source: TensorSource) -> None:
    """Let the file's pages read so far leave our RSS (GGUF memory maps)."""
    release = getattr(source, "release", None)
    if release is not None:
        release()


def _embed(source: TensorSource, share: RankShare) -> EmbedTable:
    vs, ve = share.vocab_start, share.vocab_end
    if hasattr(source, "raw_rows"):
        raw: Any = source
        qtype = raw.qtype("embed")
        if qtype not in FLOAT_TYPES:
            return EmbedTable(raw.raw_rows("embed", vs, ve), qtype)
    return EmbedTable(np.ascontiguousarray(source.rows("embed", vs, ve), np.float32), None)


def _vec(source: TensorSource, name: str) -> F32:
    return np.ascontiguousarray(source.vector(name), dtype=np.float32)
