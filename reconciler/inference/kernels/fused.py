"""The onnxruntime backend: a rank's share as fused graphs over quantized weights.

One session per block of work between two all-reduces. Attention runs inside the graphs
(``GroupQueryAttention``: RoPE, the KV cache written in place through I/O bindings to the
engine's cache arrays, causal GQA):

- world size 1: ``layers i`` runs ``building.LAYERS_PER_GRAPH`` whole layers from layer ``i``
  (norm, QKV, attention, O, residual, norm, MLP, residual; the last graph ends with the
  final norm), then ``head*`` (LM head, in vocabulary chunks): a handful of calls per
  token, no numpy in between. Groups bound the scratch memory of session creation.
- world size N > 1, per layer: ``attn i`` (norm, QKV, attention, O: a partial sum) and
  ``mlp i`` (norm, MLP: a partial sum), each all-reduced by the caller; then ``head*``.
- a pipeline stage (``share.pipelined``): as world size 1 over its own layers only; the
  final norm only in the stage holding the last layer, ``head*`` only where the share
  holds the head, the embedding only where it holds the embedding.

Weights live only inside the sessions (packed by ``quant.pack``), the embedding stays as
stored in the file (rows dequantized on lookup) and the norms are float32 vectors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gguf
import numpy as np
from numpy.typing import NDArray

from reconciler.inference.config import ModelConfig
from reconciler.inference.kernels.session import make_session
from reconciler.inference.quant.blocks import F32, dequantize
from reconciler.inference.sharding import RankShare

if TYPE_CHECKING:  # onnx is imported only when graphs are built
    from reconciler.inference.kernels.graph import GraphBuilder


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


class FusedShard:
    """Everything one rank holds for the onnxruntime backend (see the module docstring)."""

    def __init__(self, config: ModelConfig, share: RankShare, embed: EmbedTable, norm: F32,
                 int8: bool, threads: int) -> None:  # fmt: skip
        self.config, self.share, self.embed, self.norm = config, share, embed, norm
        self.int8, self.threads = int8, threads
        self.sessions: dict[str, Any] = {}
        self._keep: list[Any] = []  # weights a session still reads (see make_session)
        self.heads: list[str] = []  # LM-head sessions, in vocabulary order
        self.groups: list[str] = []  # world size 1: sessions of consecutive layers
        # per layer (post-attention, post-MLP) norms; across ranks the engine applies
        # them to the all-reduced block outputs (a norm of partial sums would be wrong)
        self.post_norms: list[tuple[F32 | None, F32 | None]] = []
        self.held = 0  # bytes of packed weights handed to the sessions

    # -- running ---------------------------------------------------------------------

    def bind(self, cache_k: F32, cache_v: F32, tables: dict[str, F32]) -> Runner:
        """A runner writing this engine's KV cache ``[L, Kl, S, E]`` in place; ``tables``:
        the RoPE tables ``cos``, ``sin`` (and ``cos_local``, ``sin_local`` for sliding
        layers) ``[S, E/2]``."""
        return Runner(self, cache_k, cache_v, tables)

    def head(self, h: F32) -> F32:
        """Logits of this rank's vocabulary rows [T, Vl]."""
        outs: list[F32] = [self.sessions[key].run(None, {"h": h})[0] for key in self.heads]
        if len(outs) == 1:
            return outs[0]
        return np.concatenate(outs, axis=-1) if outs else np.zeros((h.shape[0], 0), np.float32)

    def nbytes(self) -> int:
        """Bytes of weights held: packed matrices, the final norm and a float embedding
        (a quantized one stays the file's mapped pages, read on lookup)."""
        embed = self.embed.nbytes if self.embed.qtype is None else 0
        return self.held + int(self.norm.nbytes) + embed

    # -- building --------------------------------------------------------------------

    def add(self, key: str, g: GraphBuilder) -> None:
        """Create the session for a built graph."""
        model = g.model_bytes()
        self.sessions[key], keep = make_session(
            model, self.threads, g.external, self.int8, int8=self.int8
        )
        self._keep.extend(keep)


class _Bound:
    """One session's I/O binding and the buffers it points at: the KV cache's values,
    the step's position inputs (written in place), and one input and one output row for
    decode steps (bound once; other passes bind their own arrays)."""

    def __init__(self, binding: Any, kv: list[Any], out: str, dim: int) -> None:
        self.binding, self.kv, self.out, self.dim = binding, kv, out, dim
        self.seqlens = np.zeros(1, dtype=np.int32)  # positions after this step, minus one
        self.total = np.zeros((), dtype=np.int32)  # positions after this step, plus scratch
        self.x1 = np.zeros((1, dim), dtype=np.float32)
        self.y1 = np.zeros((1, dim), dtype=np.float32)
        self.rows = 0  # rows of the arrays x and the output are bound to now


class Runner:
    """One engine's calls into a shard's sessions, with its KV cache bound in place."""

    def __init__(
        self, shard: FusedShard, cache_k: F32, cache_v: F32, tables: dict[str, F32]
    ) -> None:
        import onnxruntime as ort

        self.shard = shard
        self.bindings: dict[str, _Bound] = {}
        for key, session in shard.sessions.items():
            names = [i.name for i in session.get_inputs()]
            layers = [int(n.removeprefix("past_k")) for n in names if n.startswith("past_k")]
            if not layers:
                continue
            b = session.io_binding()
            kv = []
            first = shard.share.layer_start  # the cache holds this share's layers only
            for i in layers:
                k, v = (
                    ort.OrtValue.ortvalue_from_numpy(c[i - first][None]) for c in (cache_k, cache_v)
                )
                b.bind_ortvalue_input(f"past_k{i}", k)
                b.bind_ortvalue_input(f"past_v{i}", v)
                b.bind_ortvalue_output(f"present_k{i}", k)
                b.bind_ortvalue_output(f"present_v{i}", v)
                kv += [k, v]
            for name in names:
                if name in tables:
                    b.bind_cpu_input(name, tables[name])
            out = session.get_outputs()[-1].name
            bound = _Bound(b, kv, out, shard.config.dim)
            b.bind_cpu_input("seqlens_k", bound.seqlens)  # written in place before each run
            b.bind_cpu_input("total_len", bound.total)
            self.bindings[key] = bound

    def _attend(self, key: str, x: F32, pos: int) -> F32:
        bound = self.bindings[key]
        b, t = bound.binding, x.shape[0]
        # the graphs' attention appends a scratch row (``GraphBuilder.attention``)
        bound.seqlens[0], bound.total[...] = pos + t, pos + t + 1
        if t == 1:  # a decode step: the input and output rows stay bound (no rebinding)
            if bound.rows != 1:
                b.bind_cpu_input("x", bound.x1)
                b.bind_output(bound.out, "cpu", 0, np.float32, [1, bound.dim], bound.y1.ctypes.data)
                bound.rows = 1
            bound.x1[...] = x
            self.shard.sessions[key].run_with_iobinding(b)
            return bound.y1.copy()  # the caller may keep it past the next step
        y: F32 = np.empty((t, bound.dim), dtype=np.float32)  # written in place
        b.bind_cpu_input("x", x)
        b.bind_output(bound.out, "cpu", 0, np.float32, list(y.shape), y.ctypes.data)
        bound.rows = t
        self.shard.sessions[key].run_with_iobinding(b)
        return y

    def layers(self, x: F32, pos: int) -> F32:
        """Every layer held (world size 1 or a pipeline stage), a group of layers per
        graph: the hidden state [T, D], final-normed if the last layer is held."""
        for key in self.shard.groups:
            x = self._attend(key, x, pos)
        return x

    def attn(self, i: int, x: F32, pos: int) -> F32:
        """This rank's partial attention block output [T, D] (world size > 1)."""
        if f"attn{i}" not in self.bindings:
            return np.zeros_like(x)
        return self._attend(f"attn{i}", x, pos)

    def mlp(self, i: int, x: F32) -> F32:
        """This rank's partial MLP output [T, D] (world size > 1)."""
        session = self.shard.sessions.get(f"mlp{i}")
        if session is None:
            return np.zeros_like(x)
        y: F32 = session.run(None, {"x": x})[0]
        return y
