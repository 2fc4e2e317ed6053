"""Pure float32 building blocks of the llama-family decoder (shape comment on every line).

Constants are Python floats so that NumPy 2 (NEP 50) keeps float32 arrays float32.
"""

from __future__ import annotations

import math
from typing import cast

import numpy as np
from numpy.typing import NDArray

from reconciler.inference.config import ModelConfig

F32 = NDArray[np.float32]


def rms_norm(x: F32, weight: F32, eps: float) -> F32:
    """x [T, D], weight [D] -> [T, D]."""
    ms = np.mean(x * x, axis=-1, keepdims=True)  # [T, 1]
    return cast(F32, x * (1.0 / np.sqrt(ms + eps)) * weight)  # [T, D]


def silu_mul(gate: F32, up: F32) -> F32:
    """SwiGLU activation: silu(gate) * up, both [T, Fl]."""
    return cast(F32, gate / (1.0 + np.exp(-gate)) * up)  # [T, Fl]


def gelu_tanh_mul(gate: F32, up: F32) -> F32:
    """GeGLU activation: gelu(gate) (tanh approximation) * up, both [T, Fl]."""
    inner = math.sqrt(2.0 / math.pi) * (gate + 0.044715 * gate * gate * gate)  # [T, Fl]
    return cast(F32, 0.5 * gate * (1.0 + np.tanh(inner)) * up)  # [T, Fl]


def head_rms_norm(x: F32, weight: F32, eps: float) -> F32:
    """RMSNorm of every head (QK-norm): x [T, n, E], weight [E] -> [T, n, E]."""
    ms = np.mean(x * x, axis=-1, keepdims=True)  # [T, n, 1]
    return cast(F32, x * (1.0 / np.sqrt(ms + eps)) * weight)  # [T, n, E]


def softmax(x: F32) -> F32:
    """Softmax over the last axis."""
    e = np.exp(x - np.max(x, axis=-1, keepdims=True))  # [..., S]
    return cast(F32, e / np.sum(e, axis=-1, keepdims=True))  # [..., S]


def inv_frequencies(config: ModelConfig, local: bool = False) -> NDArray[np.float64]:
    """RoPE inverse frequencies [E/2], with linear or llama3 scaling.

    ``local``: the sliding layers' table (base ``rope_theta_local``, never scaled).
    """
    e = config.head_dim
    theta = config.rope_theta
    if local and config.rope_theta_local is not None:
        theta = config.rope_theta_local
    inv = 1.0 / theta ** (np.arange(0, e, 2, dtype=np.float64) / e)  # [E/2]
    s = config.rope_scaling
    if s is None or local:
        return inv
    if s.kind == "linear":
        return inv / s.factor
    if s.kind == "llama3":
        wavelen = 2.0 * math.pi / inv  # [E/2]
        low, high = s.original_max_seq / s.low_freq_factor, s.original_max_seq / s.high_freq_factor
        scaled = np.where(wavelen > low, inv / s.factor, inv)  # [E/2]
        smooth = (s.original_max_seq / wavelen - s.low_freq_factor) / (
            s.high_freq_factor - s.low_freq_factor
        )
        mixed = (1.0 - smooth) * scaled / s.factor + smooth * scaled  # [E/2]
        medium = (wavelen >= high) & (wavelen <= low)
        return np.where(medium, mixed, scaled)
    raise ValueError(f"unsupported RoPE scaling {s.kind!r}")


def rope_tables(config: ModelConfig, n_pos: int, local: bool = False) -> tuple[F32, F32]:
    """cos, sin tables [n_pos, E/2] (computed in float64, stored float32)."""
    inv = inv_frequencies(config, local)  # [E/2]
    angles = np.outer(np.arange(n_pos, dtype=np.float64), inv)  # [S, E/2]
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


def apply_rope(x: F32, cos: F32, sin: F32) -> F32:
    """Half-split ("rotate_half") RoPE. x [T, n, E], cos/sin [T, E/2] -> [T, n, E]."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]  # [T, n, E/2] each
    c, s = cos[:, None, :], sin[:, None, :]  # [T, 1, E/2]
    return np.concatenate([x1 * c - x2 * s, x2 * c + x1 * s], axis=-1)  # [T, n, E]


def attention(
    q: F32, keys: F32, values: F32, start: int, window: int = 0, scale: float | None = None
) -> F32:
    """Causal GQA attention for queries at positions ``start .. start+T``.

    q [T, Kl, G, E]; keys/values [Kl, P, E] with P = start + T -> [T, Kl*G*E].
    ``window`` > 0: a query at position p sees only keys p - window < k <= p (sliding
    layers). ``scale`` multiplies the scores (default 1/sqrt(E)).
    """
    t, kl, g, e = q.shape
    p = keys.shape[1]
    qh = q.transpose(1, 2, 0, 3).reshape(kl, g * t, e)  # [Kl, G*T, E]
    scores = qh @ keys.transpose(0, 2, 1)  # [Kl, G*T, P]
    scores *= 1.0 / math.sqrt(e) if scale is None else scale
    if t > 1 or 0 < window < p:
        qpos = (start + np.arange(t))[:, None]  # [T, 1]
        allowed = np.arange(p)[None, :] <= qpos  # [T, P]
        if window > 0:
            allowed &= np.arange(p)[None, :] > qpos - window  # [T, P]
        mask = np.where(allowed, 0.0, -np.inf).astype(np.float32)  # [T, P]
        scores = (scores.reshape(kl, g, t, p) + mask).reshape(kl, g * t, p)  # [Kl, G*T, P]
    out = softmax(scores) @ values  # [Kl, G*T, E]
    return out.reshape(kl, g, t, e).transpose(2, 0, 1, 3).reshape(t, kl * g * e)  # [T, Hl*E]
