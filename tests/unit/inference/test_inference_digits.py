"""Offsets as digit blocks (int8 activations): how close the digits come to the offsets,
and what they cost in memory against the layout's estimate."""

from __future__ import annotations

import numpy as np
import pytest
from gguf import GGMLQuantizationType as Q

from reconciler.inference.quant.blocks import Unpacked
from reconciler.inference.quant.digits import digit_blocks, group_count
from reconciler.inference.quant.layout import held_bytes
from reconciler.inference.quant.pack import to_nbits


def _rebuilt(offset: np.ndarray, bits: int) -> np.ndarray:
    codes, scales = digit_blocks(offset.astype(np.float32), bits, 32)
    n, nb = offset.shape
    groups = group_count(nb * 32, 32)
    zero = 8 if bits == 4 else 128
    values = scales[..., None] * (codes.astype(np.float64) - zero)  # [N, digits * groups, 32]
    digits = values.reshape(n, -1, groups, 32).sum(axis=1)  # the digits of each group add
    rebuilt: np.ndarray = digits.reshape(n, groups * 32)[:, :nb]
    return rebuilt


@pytest.mark.parametrize(("bits", "share"), [(4, 196.0), (8, 254.0)])
@pytest.mark.parametrize("blocks", [1, 18, 32, 48, 70])
def test_digits_give_each_offset_within_a_share_of_its_groups_largest(
    bits: int, share: float, blocks: int
) -> None:
    rng = np.random.default_rng(blocks)
    offset = rng.standard_normal((6, blocks)) * np.exp(rng.uniform(-4, 2, (6, 1)))
    offset[0] = 0.0  # a row without offsets stays zero
    got = _rebuilt(offset, bits)
    padded = np.zeros((6, group_count(blocks * 32, 32) * 32))
    padded[:, :blocks] = offset
    largest = np.abs(padded.reshape(6, -1, 32)).max(axis=2).repeat(32, axis=1)[:, :blocks]
    assert np.all(np.abs(got - offset) <= largest / share * 1.001 + 1e-12)
    assert not got[0].any()


@pytest.mark.parametrize(("k", "bits", "qtype"), [(576, 4, Q.Q4_1), (1536, 4, Q.Q4_K),
                                                  (2048, 8, Q.Q5_1)])  # fmt: skip
def test_a_matrix_with_offsets_holds_what_the_layout_estimates(k: int, bits: int, qtype: Q) -> None:
    rng = np.random.default_rng(k)
    n = 24
    codes = rng.integers(0, 1 << bits, (n, k)).astype(np.uint8)
    scale = rng.random((n, k // 32)).astype(np.float32)
    offset = rng.standard_normal((n, k // 32)).astype(np.float32)
    held = to_nbits(Unpacked(codes, bits, 32, scale, offset), int8_activations=True)
    assert held.offset_t is None and held.digits == (2 if bits == 4 else 1)
    assert held.k_fed == k + held.digits * group_count(k, 32) * 32
    assert held.nbytes == held_bytes(qtype, n * k, "int8", row_length=k)
    exact = to_nbits(Unpacked(codes, bits, 32, scale, offset), int8_activations=False)
    assert exact.offset_t is not None and exact.digits == 0  # exact keeps float offsets
