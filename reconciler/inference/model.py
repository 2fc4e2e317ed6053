"""The tensor-parallel forward pass: one :class:`Engine` per rank.

Per layer each rank computes its KV-head groups' attention and its MLP columns, then
two all-reduces (after O and after down) give every rank the full residual stream.

Embedding and LM head are split over vocabulary rows (the tied matrix is held once):
the embedding is looked up by the rank owning each token and all-reduced (other ranks
contribute zeros); the LM head gives each rank its logits columns, all-gathered so that
every rank holds identical full logits. Sampling then runs on every rank with the same
seeded generator and yields the same token, so no broadcast is needed. Per-member
weights are therefore the rank's share of every matrix plus the (tiny) norm vectors.

World size 1 (``SingleRank``) is the oracle the sharded runs are tested against.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from numpy.typing import NDArray

from reconciler.inference.collectives import Collectives, SingleRank
from reconciler.inference.config import ModelConfig
from reconciler.inference.generate import TokenEvent, generate
from reconciler.inference.kernels.fused import FusedShard, Runner
from reconciler.inference.layers import F32, apply_rope, attention, rms_norm, rope_tables, silu_mul
from reconciler.inference.sampling import SamplingParams
from reconciler.inference.tokenizer import Tokenizer
from reconciler.inference.weights import LayerWeights, ShardWeights

PREFILL_CHUNK = 256  # prompt tokens per forward pass


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
        share = weights.share
        self.cache_len = min(cache_len or config.max_seq, config.max_seq)
        shape = (config.n_layers, share.n_kv_heads, self.cache_len, config.head_dim)
        self.cache_k = np.zeros(shape, dtype=np.float32)  # [L, Kl, S, E] (pages touched lazily)
        self.cache_v = np.zeros(shape, dtype=np.float32)  # [L, Kl, S, E]
        self.cos, self.sin = rope_tables(config, self.cache_len)  # [S, E/2] each
        self.pos = 0
        self.greedy = False  # set by generate() for temperature 0: see _greedy_logits
        self.runner: Runner | None = None
        if isinstance(weights, FusedShard):
            self.runner = weights.bind(self.cache_k, self.cache_v, self.cos, self.sin)

    def reset(self) -> None:
        """Forget the sequence (the cache is overwritten, not cleared)."""
        self.pos = 0

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
        if all_logits:
            return self._logits(h)  # [T, V]
        last: F32 = self._logits(h[-1:])[0]  # [V]
        return last

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
        if self.runner is not None or isinstance(self.weights, FusedShard):
            assert self.runner is not None
            return self._forward_fused(self.runner, tokens)
        x = self._embed(np.asarray(tokens, dtype=np.int64))  # [T, D]
        for i, layer in enumerate(self.weights.layers):
            x = self._layer(i, layer, x)  # [T, D]
        self.pos += t
        return rms_norm(x, self.weights.norm, self.config.norm_eps)  # [T, D]

    def _embed(self, ids: NDArray[np.int64]) -> F32:
        share = self.weights.share
        if self.comm.world_size == 1:
            return self.weights.embed[ids]  # [T, D]
        local = np.zeros((len(ids), self.config.dim), dtype=np.float32)  # [T, D]
        mine = (ids >= share.vocab_start) & (ids < share.vocab_end)  # [T]
        local[mine] = self.weights.embed[ids[mine] - share.vocab_start]
        return self.comm.all_reduce_sum(local)  # [T, D]

    def _layer(self, i: int, w: LayerWeights, x: F32) -> F32:
        cfg = self.config
        h = rms_norm(x, w.attn_norm, cfg.norm_eps)  # [T, D]
        qkv = h @ w.wqkv.T  # [T, (Hl + 2Kl) E]
        if w.bqkv is not None:
            qkv += w.bqkv
        att = self._attend(i, qkv)  # [T, Hl E]
        x = x + self.comm.all_reduce_sum(att @ w.wo.T)  # [T, D]
        h = rms_norm(x, w.ffn_norm, cfg.norm_eps)  # [T, D]
        gu = h @ w.wgu.T  # [T, 2 Fl]
        f = gu.shape[1] // 2
        a = silu_mul(gu[:, :f], gu[:, f:])  # [T, Fl]
        return x + self.comm.all_reduce_sum(a @ w.wdown.T)  # [T, D]

    def _attend(self, i: int, qkv: F32) -> F32:
        """RoPE, KV cache and attention of layer ``i`` for this step's QKV -> [T, Hl E]."""
        cfg, share = self.config, self.weights.share
        e, kl, hl, t = cfg.head_dim, share.n_kv_heads, share.n_heads, qkv.shape[0]
        q = qkv[:, : hl * e].reshape(t, hl, e)  # [T, Hl, E]
        k = qkv[:, hl * e : (hl + kl) * e].reshape(t, kl, e)  # [T, Kl, E]
        v = qkv[:, (hl + kl) * e :].reshape(t, kl, e)  # [T, Kl, E]
        p0, p1 = self.pos, self.pos + t
        cos, sin = self.cos[p0:p1], self.sin[p0:p1]  # [T, E/2]
        self.cache_k[i, :, p0:p1] = apply_rope(k, cos, sin).transpose(1, 0, 2)  # [Kl, T, E]
        self.cache_v[i, :, p0:p1] = v.transpose(1, 0, 2)  # [Kl, T, E]
        qg = apply_rope(q, cos, sin).reshape(t, kl, cfg.group, e)  # [T, Kl, G, E]
        return attention(qg, self.cache_k[i, :, :p1], self.cache_v[i, :, :p1], p0)  # [T, Hl E]

    def _forward_fused(self, runner: Runner, tokens: list[int]) -> F32:
        """The onnxruntime backend's pass (see ``kernels.fused``): the same steps, each
        layer (or each block between all-reduces) one graph, attention and cache inside."""
        x = self._embed(np.asarray(tokens, dtype=np.int64))  # [T, D]
        p0 = self.pos
        if self.comm.world_size == 1:
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
        w = self.weights
        local = w.head(h) if isinstance(w, FusedShard) else h @ w.lm_head.T  # [T, Vl]
        if self.comm.world_size == 1:
            return local
        if self.greedy and h.shape[0] == 1:
            return self._greedy_logits(local[0])[None]  # [1, V]
        return np.concatenate(self.comm.all_gather(local), axis=-1)  # [T, V]

    def _greedy_logits(self, local: F32) -> F32:
        """Greedy decoding needs only the winner: each rank offers its best (value, id),
        8 bytes instead of its slice of the logits. The result is a [V] vector with the
        winner's logit and -inf elsewhere, so argmax picks exactly what it would pick in
        the full logits (ranks hold the vocabulary in order; ties go to the lower id)."""
        start = self.weights.share.vocab_start
        if local.size:
            i = int(np.argmax(local))
            offer = np.array([local[i], start + i], dtype=np.float32)  # [2] (ids < 2**24)
        else:
            offer = np.array([-np.inf, 0.0], dtype=np.float32)  # [2]
        offers = np.stack(self.comm.all_gather(offer))  # [N, 2]
        winner = int(np.argmax(offers[:, 0]))
        out = np.full(self.config.vocab, -np.inf, dtype=np.float32)  # [V]
        out[int(offers[winner, 1])] = offers[winner, 0]
        return out
