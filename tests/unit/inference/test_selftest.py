"""The kernel self-test returns a figure on each kernel the engine has (no timing asserts)."""

from __future__ import annotations

import pytest

from reconciler.inference import selftest


@pytest.fixture(autouse=True)
def short_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(selftest, "BUDGET_S", 0.0)


def test_numpy_kernel_gives_positive_weight_bytes_per_second() -> None:
    result = selftest.run_selftest("numpy", threads=1)
    assert result.kernels == "numpy" and result.runs >= selftest.MIN_RUNS
    assert result.weight_bytes_per_s > 0


@pytest.mark.parametrize("activations", ["exact", "int8"])
def test_onnxruntime_kernel_gives_positive_weight_bytes_per_second(activations: str) -> None:
    result = selftest.run_selftest("onnxruntime", activations, threads=1)
    assert (result.kernels, result.activations, result.threads) == ("onnxruntime", activations, 1)
    assert result.weight_bytes_per_s > 0


def test_figure_counts_quantized_bytes_of_the_test_matrices() -> None:
    assert selftest.weight_bytes(2) == 2 * selftest.ROWS * selftest.COLS * 18 // 32


def test_ggml_kernel_measures_the_same_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    """ggml's product reads the test matrix as Q4_0 blocks: it equals the numpy kernel's
    dequantized product (within 8-bit activations), once per copy; one thread unless
    asked."""
    import numpy as np

    monkeypatch.delenv("MESHNET_THREADS", raising=False)
    result = selftest.run_selftest("ggml")
    assert (result.kernels, result.threads) == ("ggml", 1) and result.weight_bytes_per_s > 0
    monkeypatch.setattr(selftest, "ROWS", 64)
    monkeypatch.setattr(selftest, "COLS", 256)
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 16, (64, 256), dtype=np.uint8)
    scale = (rng.random((64, 8), dtype=np.float32) * np.float32(0.01)).astype(np.float32)
    x = rng.standard_normal((1, 256)).astype(np.float32)
    want = selftest._numpy_product(codes, scale)(x)
    got = selftest._ggml_product(codes, scale, 1)(x)
    assert got.shape == (1, 64 * selftest.COPIES)
    for copy in np.split(got, selftest.COPIES, axis=1):
        assert float(np.abs(copy - want).max() / np.abs(want).max()) < 2e-2
