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

SUPPORTED_ARCHS = ("llama", "mistral", "qwen2", "gemma3")
ACTIVATIONS = ("silu", "gelu_tanh")


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
    # Gemma-style switches (defaults give the llama family):
    activation: str = "silu"  # "silu" (SwiGLU) | "gelu_tanh" (GeGLU)
    qk_norm: bool = False  # per-head RMSNorm of q and k before RoPE ({i}.q_norm, {i}.k_norm)
    post_norms: bool = False  # RMSNorm of the attention / MLP output before the residual add
    embed_scale: float = 1.0  # embeddings multiplied by this (Gemma: sqrt(dim))
    sliding_window: int = 0  # keys a sliding layer's query sees (0: no sliding layers)
    sliding_pattern: int = 0  # every n-th layer is global, the others slide (0: all slide)
    rope_theta_local: float | None = None  # RoPE base of sliding layers (None: rope_theta)
    attn_scale: float | None = None  # attention score scale (None: 1/sqrt(head_dim))

    @property
    def group(self) -> int:
        """G: query heads sharing one KV head."""
        return self.n_heads // self.n_kv_heads

    def layer_is_sliding(self, i: int) -> bool:
        """Whether layer ``i`` attends only to the last ``sliding_window`` positions."""
        if self.sliding_window <= 0:
            return False
        return self.sliding_pattern <= 0 or (i + 1) % self.sliding_pattern != 0

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
        if self.activation not in ACTIVATIONS:
            return (
                f"unsupported activation {self.activation!r} (supported: {', '.join(ACTIVATIONS)})"
            )
        if self.head_dim % 2:
            return f"head_dim {self.head_dim} must be even for RoPE"
        return None
