"""Q80 activations: 3.76x fewer bytes, each value back within half a step."""

from __future__ import annotations

import numpy as np
import pytest

from reconciler.inference import q80


@pytest.mark.parametrize("n", [1, 31, 32, 33, 576, 1000])
def test_round_trip_is_within_half_a_step(n: int) -> None:
    rng = np.random.default_rng(n)
    x = (rng.standard_normal(n) * rng.uniform(0.01, 50.0)).astype(np.float32)
    data = q80.encode(x)
    assert len(data) == q80.encoded_size(n)
    back = q80.decode(data, n)
    assert back.dtype == np.float32 and back.shape == (n,)
    blocks = np.pad(x, (0, -n % 32)).reshape(-1, 32)
    step = np.repeat(np.abs(blocks).max(axis=1) / 127.0, 32)[:n]
    assert np.all(np.abs(back - x) <= step * 0.5 * 1.002 + 1e-12)


def test_zeros_and_huge_values_survive() -> None:
    x = np.zeros(64, dtype=np.float32)
    x[40] = 6.0e4  # near float16's limit: the scale stays finite
    back = q80.decode(q80.encode(x), 64)
    assert np.all(back[:32] == 0.0)
    assert abs(back[40] - 6.0e4) / 6.0e4 < 1e-3


def test_bytes_per_token_shrink_by_about_3_8() -> None:
    assert 576 * 4 / q80.encoded_size(576) == pytest.approx(3.76, abs=0.01)


def test_a_wrong_length_is_an_error_not_garbage() -> None:
    data = q80.encode(np.ones(40, dtype=np.float32))
    with pytest.raises(ValueError, match="cannot hold"):
        q80.decode(data, 80)
    with pytest.raises(ValueError, match="cannot hold"):
        q80.decode(data[:-1], 40)


def test_values_beyond_float16_range_saturate_instead_of_overflowing() -> None:
    x = np.full(32, 1.0, dtype=np.float32)
    x[3] = 1e9  # max / 127 is beyond float16's 65504
    back = q80.decode(q80.encode(x), 32)
    assert np.all(np.isfinite(back))
    assert back[3] == np.float32(127.0 * 65504.0)
