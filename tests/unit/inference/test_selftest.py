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
