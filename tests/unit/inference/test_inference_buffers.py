"""Weights lent to onnxruntime sessions: held once, in the kernel's layout.

A session borrows our weight arrays (no copy) and prepacks them; the arrays it never
reads again are given back to the system, the rest stay. The products stay those of the
dequantized numpy oracle.
"""

from __future__ import annotations

import tempfile

import numpy as np
import pytest
from gguf import GGMLQuantizationType as Q

from reconciler.inference.kernels.graph import GraphBuilder, Part
from reconciler.inference.kernels.session import make_session, role
from reconciler.inference.quant import dequantize, unpack
from reconciler.inference.quant.buffers import empty, lendable, release
from reconciler.inference.quant.pack import to_nbits
from tests.unit.inference.test_inference_quant import random_blocks


def test_a_released_buffer_reads_zeros_and_a_plain_array_is_left_alone() -> None:
    values = np.arange(4096, dtype=np.float32).reshape(64, 64)
    lent = lendable(values)
    assert np.array_equal(lent, values) and lent is not values
    assert release(lent.reshape(-1)[:10])  # through views, to the whole mapping
    assert not lent.any()
    assert not release(values) and values[-1, -1] == 4095.0
    assert empty((0, 3), np.uint8).shape == (0, 3)


@pytest.mark.parametrize("int8", [False, True], ids=["exact", "int8"])
def test_prepacked_weights_are_given_back_and_products_stay_right(int8: bool) -> None:
    k = 256
    raws = [(random_blocks(t, 32, k, seed=i), t) for i, t in enumerate((Q.Q4_1, Q.Q8_0))]
    x = np.random.default_rng(5).standard_normal((3, k)).astype(np.float32)
    want = np.concatenate([x @ dequantize(r, t).T for r, t in raws], axis=1)
    g = GraphBuilder(int8)
    parts: list[Part] = [to_nbits(unpack(r, t), int8) for r, t in raws]
    g.output(g.linear(g.input("x", k), parts), "y", 64)
    session, _keep = make_session(g.model_bytes(), 1, g.external, int8=int8)
    by_role: dict[str, list[np.ndarray]] = {}
    for name, array in g.external.items():
        by_role.setdefault(role(name), []).append(array)
    # prepacked, released (int8: the offsets are digit blocks among the codes, quant.digits)
    assert not any(a.any() for a in by_role["q"] + by_role.get("offset", []))
    assert ("offset" in by_role) is not int8
    scales_kept = all(a.any() for a in by_role["scale"])
    assert scales_kept is not int8  # exact reads them on every call; int8 packed its own
    got = session.run(None, {"x": x})[0]
    tolerance = 2e-2 if int8 else 1e-5
    assert float(np.abs(got - want).max()) <= tolerance * float(np.abs(want).max())


def test_without_a_writable_temporary_directory_sessions_copy_the_weights(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_scratch(*args: object, **kwargs: object) -> None:
        raise PermissionError("read-only")

    monkeypatch.setattr(tempfile, "TemporaryDirectory", no_scratch)
    k = 256
    raw = random_blocks(Q.Q4_0, 32, k, seed=7)
    x = np.random.default_rng(8).standard_normal((2, k)).astype(np.float32)
    g = GraphBuilder(False)
    g.output(g.linear(g.input("x", k), [to_nbits(unpack(raw, Q.Q4_0), False)]), "y", 32)
    session, keep = make_session(g.model_bytes(), 1, g.external, int8=False)
    assert keep == []  # onnxruntime holds its own copies
    for array in g.external.values():
        array[...] = 0  # ours are not read
    want = x @ dequantize(raw, Q.Q4_0).T
    got = session.run(None, {"x": x})[0]
    assert float(np.abs(got - want).max()) <= 1e-5 * float(np.abs(want).max())
