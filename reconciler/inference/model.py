"""The tensor-parallel forward pass: one :class:`Engine` per rank.

Per layer each rank computes its KV-head groups' attention and its MLP columns, then
two all-reduces (after O and after down) give every rank the full residual stream.

Embedding and LM head are split over vocabulary rows (the tied matrix is held once):
the embedding is looked up by the rank owning each token and all-reduced (other ranks
contribute zeros); the LM head gives each rank its logits columns, all-gathered so that
every rank holds identical full logits. Sampling then runs on every rank with the same
seeded generator and yields the same token, so no broadcast is needed. Per-member
weights are therefore the rank's share of every matrix plus the (tiny) norm vectors.

A pipeline stage's share (``sharding.plan_stages``) holds whole layers instead: its
pass runs in ``pipeline.StagePass`` (one broadcast per stage boundary, none inside a
layer) and its KV cache holds only its layers.

World size 1 (``SingleRank``) is the oracle the sharded runs are tested against.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from numpy.typing import NDArray

from reconciler.inference.collectives import Collectives, SingleRank
from reconciler.inference.config import ModelConfig
from reconciler.inference.errors import CollectiveError
from reconciler.inference.generate import TokenEvent, generate
from reconciler.inference.kernels.fused import FusedShard, Runner
from reconciler.inference.kernels.session import trim_heap
from reconciler.inference.layers import (
    F32,
    apply_rope,
    attention,
    gelu_tanh_mul,
    head_rms_norm,
    rms_norm,
    rope_tables,
    silu_mul,
)
from reconciler.inference.pipeline import StagePass
from reconciler.inference.sampling import MAX_DRAFT_TOKENS, SamplingParams
from reconciler.inference.tokenizer import Tokenizer
from reconciler.inference.weights import LayerWeights, ShardWeights, matmul

PREFILL_CHUNK = 256  # prompt tokens per forward pass
# With 8-bit activations (the ggml kernels) a last-bit difference upstream can move a
# quantization step, and BLAS rounds a row of a batched attention product differently
# by the batch's size. Passes of up to this many tokens (a decode step; a speculative
# verify pass: the last token and up to MAX_DRAFT_TOKENS drafts) attend one query at a
# time, so each row gets the bits of a one-token step and greedy answers stay the same
# with drafts. Longer passes (prompt chunks) attend in one product.
ROWWISE_QUERIES = 1 + MAX_DRAFT_TOKENS
TRIM_AFTER = 32  # prompts of this many tokens or more give their freed scratch back


class Engine:
    """One rank's model state: weights, KV cache, position."""

    def __init__(
        self,
        config: ModelConfig,
        weights: ShardWeights | FusedShard,
        collectives: Collectives | None = None,
        cache_len: int | None = None,
    ) -> None:
        self.config = config
        self.weights = weights
        self.comm: Collectives = collectives or SingleRank()
        share, comm = weights.share, self.comm
        if share.pipelined and (share.rank, share.world_size) != (comm.rank, comm.world_size):
            raise ValueError(
                f"stage {share.rank} of {share.world_size} cannot run as rank "
                f"{comm.rank} of {comm.world_size}"
            )
        self.stage = StagePass(self) if share.pipelined and share.world_size > 1 else None
        self.cache_len = min(cache_len or config.max_seq, config.max_seq)
        n_layers = len(share.layers(config.n_layers))  # a pipeline stage caches its own
        slots = self.cache_len + 1  # + the onnxruntime graphs' scratch position
        shape = (n_layers, share.n_kv_heads, slots, config.head_dim)
        self.cache_k = np.zeros(shape, dtype=np.float32)  # [L, Kl, S, E] (pages touched lazily)
        self.cache_v = np.zeros(shape, dtype=np.float32)  # [L, Kl, S, E]
        self.cos, self.sin = rope_tables(config, slots)  # [S, E/2] each
        self.cos_local, self.sin_local = self.cos, self.sin  # sliding layers' (Gemma)
        if config.rope_theta_local is not None:
            self.cos_local, self.sin_local = rope_tables(config, slots, local=True)
        self.pos = 0
        self.rowwise = getattr(weights, "kernels", "") == "ggml"  # see ROWWISE_QUERIES
        self.greedy = False  # set by generate() for temperature 0: see _greedy_logits
        self.runner: Runner | None = None
        if isinstance(weights, FusedShard):
            tables = {"cos": self.cos, "sin": self.sin}
            tables |= {"cos_local": self.cos_local, "sin_local": self.sin_local}
            self.runner = weights.bind(self.cache_k, self.cache_v, tables)

    def reset(self) -> None:
        """Forget the sequence (the cache is overwritten, not cleared)."""
        self.pos = 0

    def rewind(self, pos: int) -> None:
        """Forget every position from ``pos`` on (rejected speculative drafts).

        The cache rows past ``pos`` stay as they are: every pass writes its positions'
        keys and values before attending, and attends only up to its last position (the
        numpy path slices the cache; the onnxruntime graphs are told ``pos + T``), so
        stale rows are overwritten before anything reads them."""
        if not 0 <= pos <= self.pos:
            raise ValueError(f"cannot rewind to position {pos} from {self.pos}")
        self.pos = pos

    def generate(
        self, prompt_ids: list[int], params: SamplingParams, tokenizer: Tokenizer | None = None
    ) -> Iterator[TokenEvent]:
        """Stream the completion of ``prompt_ids`` (see ``generate.generate``)."""
        return generate(self, prompt_ids, params, tokenizer)

    def prefill(self, tokens: list[int], all_logits: bool = False) -> F32:
        """Run the prompt; logits of the last position [V] (or of every position [T, V]).

        Long prompts run in chunks of ``PREFILL_CHUNK`` tokens, so the attention scratch
        stays bounded ([Hl, chunk, positions] scores instead of [Hl, T, T])."""
        chunks = [tokens[i : i + PREFILL_CHUNK] for i in range(0, len(tokens), PREFILL_CHUNK)]
        hs = [self._forward(chunk) for chunk in chunks]  # [t, D] each
        h = hs[0] if len(hs) == 1 else np.concatenate(hs)  # [T, D]
        out: F32 = self._logits(h) if all_logits else self._logits(h[-1:])[0]  # [T, V] or [V]
        if len(tokens) >= TRIM_AFTER:
            trim_heap()  # a prompt's scratch, freed, leaves the process's RSS
        return out

    def decode(self, token: int) -> F32:
        """Append one token; logits of the next one [V]."""
        logits: F32 = self._logits(self._forward([token]))[0]  # [V]
        return logits

    def _forward(self, tokens: list[int]) -> F32:
        t = len(tokens)
        if self.pos + t > self.cache_len:
            raise ValueError(
                f"sequence of {self.pos + t} tokens exceeds the cache of {self.cache_len}"
            )
        ids = np.asarray(tokens, dtype=np.int64)  # [T]
        if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= self.config.vocab):
            bad = next(i for i in tokens if not 0 <= i < self.config.vocab)
            raise ValueError(f"token id {bad} is outside the vocabulary of {self.config.vocab}")
        if self.stage is not None:
            return self.stage.forward(ids)  # [T, D]
        if self.runner is not None or isinstance(self.weights, FusedShard):
            assert self.runner is not None
            return self._forward_fused(self.runner, tokens)
        x = self._embed(ids)  # [T, D]
        for i, layer in enumerate(self.weights.layers):
            x = self._layer(i, layer, x)  # [T, D]
        self.pos += t
        return rms_norm(x, self.weights.norm, self.config.norm_eps)  # [T, D]

    def _embed(self, ids: NDArray[np.int64]) -> F32:
        share, scale = self.weights.share, self.config.embed_scale
        if self.comm.world_size == 1 or share.pipelined:  # a stage holds every row
            x = self.weights.embed[ids]  # [T, D]
        else:
            local = np.zeros((len(ids), self.config.dim), dtype=np.float32)  # [T, D]
            mine = (ids >= share.vocab_start) & (ids < share.vocab_end)  # [T]
            local[mine] = self.weights.embed[ids[mine] - share.vocab_start]
            x = self.comm.all_reduce_sum(local)  # [T, D]
        return x if scale == 1.0 else x * scale  # [T, D]

    def _layer(self, i: int, w: LayerWeights, x: F32) -> F32:
        cfg = self.config
        h = rms_norm(x, w.attn_norm, cfg.norm_eps)  # [T, D]
        qkv = matmul(h, w.wqkv)  # [T, (Hl + 2Kl) E]
        if w.bqkv is not None:
            qkv += w.bqkv
        att = self._attend(i, w, qkv)  # [T, Hl E]
        o = self._reduce(matmul(att, w.wo))  # [T, D]
        if w.post_attn_norm is not None:
            o = rms_norm(o, w.post_attn_norm, cfg.norm_eps)  # [T, D]
        x = x + o  # [T, D]
        h = rms_norm(x, w.ffn_norm, cfg.norm_eps)  # [T, D]
        gu = matmul(h, w.wgu)  # [T, 2 Fl]
        f = gu.shape[1] // 2
        act = gelu_tanh_mul if cfg.activation == "gelu_tanh" else silu_mul
        a = act(gu[:, :f], gu[:, f:])  # [T, Fl]
        m = self._reduce(matmul(a, w.wdown))  # [T, D]
        if w.post_ffn_norm is not None:
            m = rms_norm(m, w.post_ffn_norm, cfg.norm_eps)  # [T, D]
        return x + m  # [T, D]

    def _reduce(self, partial: F32) -> F32:
        """The all-reduce of a row-split block's output (a pipeline stage's is whole)."""
        return partial if self.stage is not None else self.comm.all_reduce_sum(partial)

    def _attend(self, i: int, w: LayerWeights, qkv: F32) -> F32:
        """RoPE, KV cache and attention of layer ``i`` for this step's QKV -> [T, Hl E]."""
        cfg, share = self.config, self.weights.share
        e, kl, hl, t = cfg.head_dim, share.n_kv_heads, share.n_heads, qkv.shape[0]
        q = qkv[:, : hl * e].reshape(t, hl, e)  # [T, Hl, E]
        k = qkv[:, hl * e : (hl + kl) * e].reshape(t, kl, e)  # [T, Kl, E]
        v = qkv[:, (hl + kl) * e :].reshape(t, kl, e)  # [T, Kl, E]
        if w.q_norm is not None and w.k_norm is not None:  # QK-norm (Gemma)
            q = head_rms_norm(q, w.q_norm, cfg.norm_eps)  # [T, Hl, E]
            k = head_rms_norm(k, w.k_norm, cfg.norm_eps)  # [T, Kl, E]
        p0, p1, c = self.pos, self.pos + t, i - share.layer_start  # c: cache index
        sliding = cfg.layer_is_sliding(i)
        cos_t, sin_t = (self.cos_local, self.sin_local) if sliding else (self.cos, self.sin)
        cos, sin = cos_t[p0:p1], sin_t[p0:p1]  # [T, E/2]
        self.cache_k[c, :, p0:p1] = apply_rope(k, cos, sin).transpose(1, 0, 2)  # [Kl, T, E]
        self.cache_v[c, :, p0:p1] = v.transpose(1, 0, 2)  # [Kl, T, E]
        qg = apply_rope(q, cos, sin).reshape(t, kl, cfg.group, e)  # [T, Kl, G, E]
        window = cfg.sliding_window if sliding else 0
        s0 = max(0, p0 + 1 - window) if window else 0  # the first key any query here sees
        keys, values = self.cache_k[c, :, s0:p1], self.cache_v[c, :, s0:p1]  # [Kl, P, E]
        if self.rowwise and 1 < t <= ROWWISE_QUERIES:  # each query as in a one-token step
            return np.concatenate([
                attention(qg[j : j + 1], keys[:, : p0 - s0 + j + 1], values[:, : p0 - s0 + j + 1],
                          p0 - s0 + j, window, cfg.attn_scale)
                for j in range(t)
            ])  # fmt: skip
        return attention(qg, keys, values, p0 - s0, window, cfg.attn_scale)  # [T, Hl E]

    def _forward_fused(self, runner: Runner, tokens: list[int]) -> F32:
        """The onnxruntime backend's pass (see ``kernels.fused``): the same steps, each
        layer (or each block between all-reduces) one graph, attention and cache inside."""
        x = self._embed(np.asarray(tokens, dtype=np.int64))  # [T, D]
        p0 = self.pos
        if self.weights.share.world_size == 1:  # whole-layer graphs (see kernels.fused)
            x = runner.layers(x, p0)  # [T, D], final-normed
            self.pos += len(tokens)
            return x
        eps = self.config.norm_eps
        for i, (post_attn, post_ffn) in enumerate(runner.shard.post_norms):
            y = self.comm.all_reduce_sum(runner.attn(i, x, p0))  # [T, D]
            x = x + (y if post_attn is None else rms_norm(y, post_attn, eps))  # [T, D]
            y = self.comm.all_reduce_sum(runner.mlp(i, x))  # [T, D]
            x = x + (y if post_ffn is None else rms_norm(y, post_ffn, eps))  # [T, D]
        self.pos += len(tokens)
        return rms_norm(x, self.weights.norm, self.config.norm_eps)  # [T, D]

    def _logits(self, h: F32) -> F32:
        if self.stage is not None:
            return self.stage.logits(h)  # [T, V] from the last stage
        w = self.weights
        local = w.head(h) if isinstance(w, FusedShard) else matmul(h, w.lm_head)  # [T, Vl]
        if self.comm.world_size == 1:
            return local
        if self.greedy:
            return self._greedy_logits(local)  # [T, V]
        logits = np.concatenate(self.comm.all_gather(local), axis=-1)  # [T, V]
        if logits.shape != (h.shape[0], self.config.vocab):
            raise CollectiveError(f"gathered logits of shape {logits.shape}, not [T, V]")
        return logits

    def _greedy_logits(self, local: F32) -> F32:
        """Greedy decoding needs only the winners: for each of the T rows each rank offers
        its best (value, id), 8 bytes a row instead of its slice of the logits (a
        speculative verify pass of T rows sends 8 T bytes). The result is [T, V] with each
        row's winning logit and -inf elsewhere, so argmax picks exactly what it would pick
        in the full logits (ranks hold the vocabulary in order; ties go to the lower id)."""
        t, start = local.shape[0], self.weights.share.vocab_start
        offer = np.empty((t, 2), dtype=np.float32)  # [T, 2] (value, id); ids < 2**24
        if local.shape[1]:
            best = np.argmax(local, axis=1)  # [T]
            offer[:, 0] = local[np.arange(t), best]
            offer[:, 1] = start + best
        else:
            offer[:, 0], offer[:, 1] = -np.inf, 0.0
        gathered = self.comm.all_gather(offer)
        if any(o.shape != (t, 2) for o in gathered):
            raise CollectiveError("a rank offered greedy winners that are not [T] (value, id)")
        offers = np.stack(gathered)  # [N, T, 2]
        winner = np.argmax(offers[:, :, 0], axis=0)  # [T] the lowest rank among equals
        rows = np.arange(t)  # [T]
        values, tokens = offers[winner, rows, 0], offers[winner, rows, 1]  # [T] each
        bad = ~((tokens >= 0) & (tokens < self.config.vocab) & (tokens == np.floor(tokens)))
        if bad.any():
            raise CollectiveError(
                f"a rank offered token id {tokens[bad][0]}, outside the vocabulary"
            )
        out = np.full((t, self.config.vocab), -np.inf, dtype=np.float32)  # [T, V]
        out[rows, tokens.astype(np.int64)] = values
        return out
