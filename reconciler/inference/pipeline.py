"""The pipeline-parallel forward pass: each rank runs a contiguous range of whole layers.

Shares come from ``sharding.plan_stages``: stage ``r`` holds layers
``[layer_start, layer_end)`` at full width, so no all-reduce runs inside a layer. A
forward pass of ``T`` tokens over ``N`` stages is ``N - 1`` one-hop broadcasts::

    stage 0 embeds and runs its layers -> broadcast(h, root=0) -> stage 1 runs its layers
    -> broadcast(h, root=1) -> ... -> stage N-1 runs its layers and the final norm

and the logits reach every rank with one more, ``broadcast(root=N-1)``: for greedy
decoding only each row's winner ``(value, id)`` (8 bytes a row, as the tensor-parallel
``_greedy_logits`` does), otherwise the full ``[T, V]`` logits. Every rank then holds the
same logits and samples the same token, so the next token needs no broadcast.

Every rank takes part in every broadcast (the step numbers of the network collectives
stay aligned) and the turn passes from stage to stage. When a forward pass is followed
by another without logits in between (the chunks of a long prompt), the last stage first
broadcasts an empty array, so stage 0 never runs more than one pass ahead of the others.

Everything received is checked (dtype, shape, winner ids): a bad frame from a member is a
CollectiveError, never a crash or wrong shapes further on.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from reconciler.inference.collectives import Collectives
from reconciler.inference.config import ModelConfig
from reconciler.inference.errors import CollectiveError
from reconciler.inference.kernels.fused import FusedShard, Runner
from reconciler.inference.layers import F32, rms_norm
from reconciler.inference.weights import LayerWeights, ShardWeights, matmul

_NOTHING = np.zeros(0, dtype=np.float32)  # what a non-root rank offers to a broadcast


class StageEngine(Protocol):
    """What a stage's pass uses of its engine (``model.Engine``, which owns the pass)."""

    config: ModelConfig
    comm: Collectives
    weights: ShardWeights | FusedShard
    runner: Runner | None
    pos: int
    greedy: bool

    def _embed(self, ids: NDArray[np.int64]) -> F32: ...

    def _layer(self, i: int, w: LayerWeights, x: F32) -> F32: ...


class StagePass:
    """One pipeline stage's forward pass and logits, run on its engine."""

    def __init__(self, engine: StageEngine) -> None:
        self.engine = engine
        self.pending = False  # a pass ended without its logits being broadcast

    def forward(self, ids: NDArray[np.int64]) -> F32:
        """Run ``ids`` through every stage; the last stage returns the final-normed hidden
        state [T, D], the others zeros [T, D] (their rows are only counted)."""
        e = self.engine
        comm, share = e.comm, e.weights.share
        stage, last, t, d = share.rank, comm.world_size - 1, len(ids), e.config.dim
        if self.pending:  # the previous pass's logits were not broadcast: keep in step
            comm.broadcast(_NOTHING, root=last)
        x = e._embed(ids) if stage == 0 else np.zeros((t, d), dtype=np.float32)  # [T, D]
        for root in range(last):
            if root == stage:
                x = self._layers(x)  # [T, D]
            got = comm.broadcast(x if root == stage else _NOTHING, root=root)
            if root + 1 == stage:
                x = _expect(got, (t, d), f"hidden state from stage {root}")  # [T, D]
        if stage == last:
            x = self._layers(x)  # [T, D], final-normed
        e.pos += t
        self.pending = True
        return x if stage == last else np.zeros((t, d), dtype=np.float32)  # [T, D]

    def logits(self, h: F32) -> F32:
        """The last stage's logits of ``h`` [T, D] on every rank: [T, V]."""
        e = self.engine
        comm, w, vocab = e.comm, e.weights, e.config.vocab
        last, t = comm.world_size - 1, h.shape[0]
        self.pending = False
        local = _NOTHING
        if comm.rank == last:
            local = w.head(h) if isinstance(w, FusedShard) else matmul(h, w.lm_head)  # [T, V]
        if not e.greedy:
            full = comm.broadcast(local, root=last)  # [T, V]
            return _expect(full, (t, vocab), "logits")
        offers = _winners(local) if comm.rank == last else _NOTHING  # [T, 2]
        got = _expect(comm.broadcast(offers, root=last), (t, 2), "greedy winners")
        return _spread(got, vocab)  # [T, V]

    def _layers(self, x: F32) -> F32:
        """This stage's layers on ``x`` [T, D] (and the final norm on the last stage)."""
        e = self.engine
        if e.runner is not None:
            return e.runner.layers(x, e.pos)  # [T, D]
        w = e.weights
        assert not isinstance(w, FusedShard)
        for i, layer in zip(w.share.layers(e.config.n_layers), w.layers, strict=True):
            x = e._layer(i, layer, x)  # [T, D]
        if w.share.has_head:
            x = rms_norm(x, w.norm, e.config.norm_eps)  # [T, D]
        return x


def _winners(logits: F32) -> F32:
    """Each row's best ``(value, id)`` [T, 2] (ids < 2**24 are exact in float32; ties go
    to the lower id, as argmax over the full row would)."""
    ids = np.argmax(logits, axis=-1)  # [T]
    values = logits[np.arange(len(ids)), ids]  # [T]
    return np.stack([values, ids.astype(np.float32)], axis=-1).astype(np.float32)  # [T, 2]


def _spread(offers: F32, vocab: int) -> F32:
    """[T, V] logits with each row's winner and -inf elsewhere (argmax picks the winner)."""
    ids = offers[:, 1]  # [T]
    if not np.all((ids >= 0) & (ids < vocab) & (ids == np.floor(ids))):
        raise CollectiveError(
            f"the last stage offered token ids {ids.tolist()}, not in [0, {vocab})"
        )
    out = np.full((len(ids), vocab), -np.inf, dtype=np.float32)  # [T, V]
    out[np.arange(len(ids)), ids.astype(np.int64)] = offers[:, 0]
    return out


def _expect(x: NDArray[np.generic], shape: tuple[int, ...], what: str) -> F32:
    """``x`` if it is float32 of ``shape``, else CollectiveError."""
    if x.dtype != np.float32 or x.shape != shape:
        raise CollectiveError(f"{what}: got {x.dtype} {x.shape}, expected float32 {shape}")
    return x  # type: ignore[return-value]
