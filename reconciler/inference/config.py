"""Model hyper-parameters shared by every loader and the forward pass.

Dimension letters used in shape comments across the package::

    T  tokens in this step (prompt length at prefill, 1 at decode)
    S  positions held in the KV cache (past + current)
    D  model width (``dim``)
    H  attention (query) heads; Hl the heads held by this rank
    K  key/value heads;         Kl the KV heads held by this rank
    G  query heads per KV head (H // K)
    E  head width (``head_dim``)
    F  MLP hidden width (``hidden_dim``); Fl the columns held by this rank
    V  vocabulary size;                   Vl the vocabulary rows held by this rank
"""

from __future__ import annotations

from dataclasses import dataclass

SUPPORTED_ARCHS = ("llama", "mistral", "qwen2")


@dataclass(frozen=True)
class RopeScaling:
    """RoPE frequency scaling: ``linear`` (positions / factor) or ``llama3`` (per-band)."""

    kind: str
    factor: float
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_max_seq: int = 8192


@dataclass(frozen=True)
class ModelConfig:
    """Architecture and sizes of a llama-family decoder."""

    arch: str
    vocab: int  # V
    dim: int  # D
    n_layers: int
    n_heads: int  # H
    n_kv_heads: int  # K
    head_dim: int  # E
    hidden_dim: int  # F
    norm_eps: float
    rope_theta: float
    max_seq: int
    tie_embeddings: bool
    attention_bias: bool = False
    rope_scaling: RopeScaling | None = None
    bos_id: int | None = None
    eos_ids: tuple[int, ...] = ()

    @property
    def group(self) -> int:
        """G: query heads sharing one KV head."""
        return self.n_heads // self.n_kv_heads

    def validate(self) -> str | None:
        """A reason this configuration cannot run, or None."""
        if self.arch not in SUPPORTED_ARCHS:
            return (
                f"unsupported architecture {self.arch!r} (supported: {', '.join(SUPPORTED_ARCHS)})"
            )
        if min(self.vocab, self.dim, self.n_layers, self.n_heads, self.n_kv_heads) <= 0:
            return "sizes must be positive"
        if self.n_heads % self.n_kv_heads:
            return f"{self.n_heads} heads are not a multiple of {self.n_kv_heads} KV heads"
        if self.head_dim % 2:
            return f"head_dim {self.head_dim} must be even for RoPE"
        return None
