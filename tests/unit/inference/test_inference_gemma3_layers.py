"""Gemma's building blocks: GeGLU, QK-norm, sliding-window attention, local RoPE."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from reconciler.inference.config import ModelConfig, RopeScaling
from reconciler.inference.layers import attention, gelu_tanh_mul, head_rms_norm, rope_tables

CONFIG = ModelConfig(
    arch="gemma3", vocab=16, dim=8, n_layers=12, n_heads=2, n_kv_heads=1, head_dim=4,
    hidden_dim=8, norm_eps=1e-6, rope_theta=1e6, max_seq=64, tie_embeddings=True,
    sliding_window=4, sliding_pattern=6, rope_theta_local=1e4,
)  # fmt: skip


def test_gelu_tanh_matches_torch_values() -> None:
    """torch.nn.functional.gelu(x, approximate="tanh") at a few points."""
    gate = np.array([[-3.0, -1.0, 0.0, 0.5, 1.0, 3.0]], dtype=np.float32)
    want = [-0.00363739, -0.15880801, 0.0, 0.34571401, 0.84119199, 2.99636261]
    got = gelu_tanh_mul(gate, np.ones_like(gate))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got[0], want, atol=1e-6)
    np.testing.assert_allclose(gelu_tanh_mul(gate, 2 * np.ones_like(gate))[0], 2 * got[0])


def test_head_rms_norm_normalises_each_head_alone() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 2, 4)).astype(np.float32) * np.float32(5.0)
    out = head_rms_norm(x, np.ones(4, dtype=np.float32), 1e-6)
    np.testing.assert_allclose(np.sqrt(np.mean(out * out, axis=-1)), 1.0, rtol=1e-5)
    y = x.copy()
    y[:, 1] *= 100.0  # another head's scale does not leak into head 0
    np.testing.assert_allclose(head_rms_norm(y, np.ones(4, np.float32), 1e-6)[:, 0], out[:, 0])


def test_layers_slide_except_every_sixth() -> None:
    assert [CONFIG.layer_is_sliding(i) for i in range(12)] == ([True] * 5 + [False]) * 2
    assert not replace(CONFIG, sliding_window=0).layer_is_sliding(0)


def _keys(rng: np.random.Generator, p: int) -> tuple[np.ndarray, np.ndarray]:
    k = rng.standard_normal((1, p, 4)).astype(np.float32)
    v = rng.standard_normal((1, p, 4)).astype(np.float32)
    return k, v


def test_sliding_window_attention_sees_only_the_last_window() -> None:
    rng = np.random.default_rng(1)
    t, window = 7, 3
    q = rng.standard_normal((t, 1, 2, 4)).astype(np.float32)
    keys, values = _keys(rng, t)
    out = attention(q, keys, values, 0, window)
    for p in range(t):
        lo = max(0, p - window + 1)  # keys p-window < k <= p
        alone = attention(q[p : p + 1], keys[:, lo : p + 1], values[:, lo : p + 1], p - lo)
        np.testing.assert_allclose(out[p], alone[0], rtol=1e-5, atol=1e-6)
    full = attention(q, keys, values, 0)
    assert not np.allclose(out[-1], full[-1])  # the window changed the last row


def test_decode_step_applies_the_window_too() -> None:
    rng = np.random.default_rng(2)
    q = rng.standard_normal((1, 1, 2, 4)).astype(np.float32)
    keys, values = _keys(rng, 9)
    got = attention(q, keys, values, 8, window=3)
    want = attention(q, keys[:, 6:], values[:, 6:], 2)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_attention_scale_replaces_inverse_sqrt_head_dim() -> None:
    rng = np.random.default_rng(3)
    q = rng.standard_normal((2, 1, 2, 4)).astype(np.float32)
    keys, values = _keys(rng, 2)
    scaled = attention(q, keys, values, 0, scale=0.125)
    default = attention(q * np.float32(0.125 * 2.0), keys, values, 0)  # 1/sqrt(4) = 0.5
    np.testing.assert_allclose(scaled, default, rtol=1e-5, atol=1e-6)


def test_local_rope_uses_its_own_base_without_scaling() -> None:
    scaled = replace(CONFIG, rope_scaling=RopeScaling(kind="linear", factor=8.0))
    cos_g, _ = rope_tables(scaled, 3)
    cos_l, sin_l = rope_tables(scaled, 3, local=True)
    inv_local = 1.0 / 1e4 ** (np.arange(0, 4, 2) / 4)
    np.testing.assert_allclose(cos_l[2], np.cos(2 * inv_local), rtol=1e-6)
    np.testing.assert_allclose(sin_l[2], np.sin(2 * inv_local), rtol=1e-6)
    inv_global = 1.0 / 1e6 ** (np.arange(0, 4, 2) / 4) / 8.0
    np.testing.assert_allclose(cos_g[2], np.cos(2 * inv_global), rtol=1e-6)
