"""Graph building: a residual's norm fuses with its Add and keeps both values right."""

from __future__ import annotations

import numpy as np

from reconciler.inference.kernels.graph import GraphBuilder
from reconciler.inference.kernels.session import make_session
from reconciler.inference.layers import rms_norm


def _run(g: GraphBuilder, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session, _keep = make_session(g.model_bytes(), 1, g.external)
    out: list[np.ndarray] = session.run(None, feeds)
    return out


def test_norm_of_a_residual_sum_is_one_node_and_keeps_the_sum() -> None:
    rng = np.random.default_rng(0)
    a, b, c = (rng.standard_normal((3, 64)).astype(np.float32) for _ in range(3))
    w1, w2 = (rng.random(64).astype(np.float32) + 0.5 for _ in range(2))
    g = GraphBuilder(False)
    s = g.add(g.input("a", 64), g.input("b", 64))
    normed = g.rms_norm(s, w1, 1e-6)
    t = g.add(s, g.input("c", 64))  # the sum is still read after its norm
    g.output(normed, "normed", 64)
    g.output(g.rms_norm(t, w2, 1e-6), "final", 64)
    g.output(t, "t", 64)
    ops = [n.op_type for n in g.nodes]
    assert ops.count("SkipSimplifiedLayerNormalization") == 2 and "Add" not in ops
    got_normed, got_final, got_t = _run(g, {"a": a, "b": b, "c": c})
    np.testing.assert_allclose(got_normed, rms_norm(a + b, w1, 1e-6), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got_t, a + b + c, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got_final, rms_norm(a + b + c, w2, 1e-6), rtol=1e-5, atol=1e-5)


def test_norm_of_a_plain_value_stays_a_norm() -> None:
    x = np.random.default_rng(1).standard_normal((2, 32)).astype(np.float32)
    w = np.ones(32, dtype=np.float32)
    g = GraphBuilder(False)
    g.output(g.rms_norm(g.input("x", 32), w, 1e-5), "y", 32)
    assert [n.op_type for n in g.nodes] == ["SimplifiedLayerNormalization", "Identity"]
    np.testing.assert_allclose(_run(g, {"x": x})[0], rms_norm(x, w, 1e-5), rtol=1e-5, atol=1e-6)
