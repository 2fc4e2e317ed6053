"""A rank's share of the weights, fused into the layouts the forward pass streams.

Matrices are kept as stored in the files, ``[out, in]`` C-contiguous, and applied as
``x @ W.T``: measured on this machine's OpenBLAS, that gemv is as fast or faster than
``x @ W`` with ``W`` as ``[in, out]``, and loading needs no transpose. Matrices that
read the same input are fused: Q/K/V into ``wqkv`` and gate/up into ``wgu``.

Loaders expose a :class:`TensorSource` over logical names (``embed``, ``lm_head``,
``norm``, and per layer ``"{i}.q"``, ``"{i}.k"``, ``"{i}.v"``, ``"{i}.o"``, ``"{i}.gate"``,
``"{i}.up"``, ``"{i}.down"``, ``"{i}.attn_norm"``, ``"{i}.ffn_norm"``, ``"{i}.q_bias"``,
Gemma's ``"{i}.q_norm"``, ``"{i}.k_norm"``, ``"{i}.post_attn_norm"``, ``"{i}.post_ffn_norm"`` ...),
so slicing and fusion live here once for every file format.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from reconciler.inference.config import ModelConfig
from reconciler.inference.sharding import RankShare

F32 = NDArray[np.float32]


class TensorSource(Protocol):
    """Float32 slices of a model's tensors, reading only what is asked."""

    def has(self, name: str) -> bool:
        """Whether the logical tensor exists."""
        ...

    def rows(self, name: str, start: int, end: int) -> F32:
        """Output rows ``[start, end)`` of a matrix: ``[end - start, in]``."""
        ...

    def cols(self, name: str, start: int, end: int) -> F32:
        """Input columns ``[start, end)`` of a matrix: ``[out, end - start]``."""
        ...

    def vector(self, name: str, start: int = 0, end: int | None = None) -> F32:
        """Elements ``[start, end)`` of a 1-D tensor."""
        ...


def release_source(source: TensorSource) -> None:
    """Let the file's pages read so far leave our RSS, where the source maps its file
    (GGUF: ``GGUFSource.release``)."""
    release = getattr(source, "release", None)
    if release is not None:
        release()


class Applied(Protocol):
    """A matrix that applies itself (``kernels.blockmatrix.BlockMatrix``: GGUF blocks
    multiplied by ggml where they lie)."""

    @property
    def nbytes(self) -> int: ...

    @property
    def shape(self) -> tuple[int, int]: ...

    def apply(self, x: F32) -> F32:
        """``x [T, K] @ W.T`` -> ``[T, N]``."""
        ...


Matrix = F32 | Applied  # [N, K]


def matmul(x: F32, w: Matrix) -> F32:
    """``x [T, K] @ W.T`` -> ``[T, N]`` for a float32 array or an :class:`Applied`."""
    if isinstance(w, np.ndarray):
        out: F32 = x @ w.T
        return out
    return w.apply(x)


@dataclass
class LayerWeights:
    """One decoder layer's share."""

    attn_norm: F32  # [D]
    wqkv: Matrix  # [(Hl + 2 Kl) E, D]
    bqkv: F32 | None  # [(Hl + 2 Kl) E]
    wo: Matrix  # [D, Hl E]
    ffn_norm: F32  # [D]
    wgu: Matrix  # [2 Fl, D]  gate rows then up rows
    wdown: Matrix  # [D, Fl]
    q_norm: F32 | None = None  # [E] QK-norm (config.qk_norm)
    k_norm: F32 | None = None  # [E]
    post_attn_norm: F32 | None = None  # [D] (config.post_norms)
    post_ffn_norm: F32 | None = None  # [D]

    def norms(self) -> list[F32]:
        """The optional norm vectors this layer has."""
        extra = (self.q_norm, self.k_norm, self.post_attn_norm, self.post_ffn_norm)
        return [a for a in extra if a is not None]


@dataclass
class ShardWeights:
    """Everything one rank holds."""

    share: RankShare
    # [Vl, D] token-embedding rows vocab_start..vocab_end ([0, D] if not held); ``ggml``:
    # rows as stored, dequantized on lookup (``kernels.fused.EmbedTable``)
    embed: Any
    lm_head: Matrix  # [Vl, D] (the same array as embed when tied; [0, D] if not held)
    norm: F32  # [D] ([0] if not held)
    layers: list[LayerWeights]  # share.layers(n_layers), in order
    kernels: str = "numpy"  # "numpy" (float32) or "ggml" (the file's blocks)

    def nbytes(self) -> int:
        """Bytes of weights held (a tied LM head counted once; an embedding kept as stored
        that is not also the head is the file's mapped pages, read on lookup: not counted)."""
        held: dict[int, int] = {}
        for item in (self.embed, self.lm_head, self.norm):
            _count(item, held)
        for layer in self.layers:
            for a in (layer.attn_norm, layer.wqkv, layer.bqkv, layer.wo):
                _count(a, held)
            for a in (layer.ffn_norm, layer.wgu, layer.wdown, *layer.norms()):
                _count(a, held)
        return sum(held.values())


def _count(item: Any, held: dict[int, int]) -> None:
    """Add an array or a matrix's parts to ``held`` by id. An embedding kept as stored
    (``EmbedTable``) adds nothing: its rows are the file's mapped pages, or the tied
    head's own part, counted with the head."""
    if item is None:
        return
    if isinstance(item, np.ndarray):
        held[id(item)] = int(item.nbytes)
        return
    for part in getattr(item, "parts", ()):  # a BlockMatrix: its arrays, shared by id
        held[id(part)] = int(part.nbytes)


def build_shard(
    source: TensorSource,
    config: ModelConfig,
    share: RankShare,
    progress: Callable[[float], None] | None = None,
) -> ShardWeights:
    """Read and fuse one rank's share from a source; `progress(fraction)` after each layer.

    A pipeline stage reads only its layers, and the embedding and the LM head and final
    norm only if it holds them (an empty ``[0, D]`` array stands for one it does not)."""
    vs, ve = share.vocab_start, share.vocab_end
    none = np.zeros((0, config.dim), dtype=np.float32)  # [0, D]
    embed = _c(source.rows("embed", vs, ve)) if share.has_embed else none
    tied = config.tie_embeddings or not source.has("lm_head")
    if not share.has_head:
        lm_head = none
    elif tied:
        lm_head = embed if share.has_embed else _c(source.rows("embed", vs, ve))
    else:
        lm_head = _c(source.rows("lm_head", vs, ve))
    norm = _c(source.vector("norm")) if share.has_head else np.zeros(0, dtype=np.float32)
    layers = read_layers(config, share, lambda i: _layer(source, config, share, i), progress)
    return ShardWeights(share, embed, lm_head, norm, layers)


def read_layers(
    config: ModelConfig,
    share: RankShare,
    read_layer: Callable[[int], LayerWeights],
    progress: Callable[[float], None] | None,
) -> list[LayerWeights]:
    """The layers ``share`` holds, each read by ``read_layer``; ``progress`` hears the
    fraction read after each."""
    held = share.layers(config.n_layers)
    layers = []
    for n, i in enumerate(held):
        layers.append(read_layer(i))
        if progress is not None:
            progress((n + 1) / len(held))
    return layers


def _layer(source: TensorSource, config: ModelConfig, share: RankShare, i: int) -> LayerWeights:
    e = config.head_dim
    q = (share.head_start * e, share.head_end * e)
    kv = (share.kv_start * e, share.kv_end * e)
    wqkv = np.concatenate(
        [source.rows(f"{i}.q", *q), source.rows(f"{i}.k", *kv), source.rows(f"{i}.v", *kv)]
    )
    bqkv = None
    if source.has(f"{i}.q_bias"):
        parts = [source.vector(f"{i}.{n}_bias", *r) for n, r in (("q", q), ("k", kv), ("v", kv))]
        bqkv = _c(np.concatenate(parts))
    f = (share.ffn_start, share.ffn_end)
    wgu = np.concatenate([source.rows(f"{i}.gate", *f), source.rows(f"{i}.up", *f)])

    def vec(name: str, wanted: bool) -> F32 | None:
        return _c(source.vector(f"{i}.{name}")) if wanted else None

    return LayerWeights(
        attn_norm=_c(source.vector(f"{i}.attn_norm")),
        wqkv=_c(wqkv),
        bqkv=bqkv,
        wo=_c(source.cols(f"{i}.o", *q)),
        ffn_norm=_c(source.vector(f"{i}.ffn_norm")),
        wgu=_c(wgu),
        wdown=_c(source.cols(f"{i}.down", *f)),
        q_norm=vec("q_norm", config.qk_norm),
        k_norm=vec("k_norm", config.qk_norm),
        post_attn_norm=vec("post_attn_norm", config.post_norms),
        post_ffn_norm=vec("post_ffn_norm", config.post_norms),
    )


def _c(a: NDArray[np.generic]) -> F32:
    """C-contiguous float32."""
    return np.ascontiguousarray(a, dtype=np.float32)
