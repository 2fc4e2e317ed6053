"""Bytes a weight takes once loaded, per GGUF format and kernel layout (pure).

What ``quant.pack`` makes of each format, and what onnxruntime keeps of it:

- 4-bit codes (Q4_0, Q4_1, Q4_K): nibbles (0.5 bytes a weight) and a float32 scale per
  32 weights (0.125); a float32 offset per 32 where the format has minimums (Q4_1, Q4_K).
- 8-bit codes (Q5_0, Q5_1, Q8_0, Q5_K, Q6_K), exact: two nibble halves (1.0) with a
  scale each and an offset (``pack``'s nibble split); int8: one byte (1.0) and a scale,
  plus the offset where the format has one. Q6_K's scales cover 16 weights, not 32.
- int8 activations: onnxruntime's int8 kernel (MLAS, ``accuracy_level=4``) keeps a
  float32 block sum per block beside each block's scale (``BLOCK_SUM``). Offsets are not
  kept as floats: they are digit blocks after each row's codes (``quant.digits``), a
  fixed number of blocks per row and per 32 x 32 inputs, so their bytes depend on the
  row's length (``held_bytes``' ``row_length``; a share that splits a matrix's inputs
  between devices holds a little more than its fraction, a block per group cut).
- float tensors (F32, F16, BF16) and the numpy kernels: float32, 4 bytes a weight.
- ``ggml``: every tensor as the file stores it (``kernels.blockmatrix``): the file's
  bytes a weight, whatever the format.

``held_bytes`` is what ``FusedShard.nbytes()`` reports for the same matrices (the tests
check it on a real load), so a job can be refused, or given the smaller layout, before
anything is read.
"""

from __future__ import annotations

from gguf import GGML_QUANT_SIZES
from gguf import GGMLQuantizationType as Q

from reconciler.inference.quant.digits import BLOCK_SUM_BYTES as BLOCK_SUM
from reconciler.inference.quant.digits import row_bytes

F32_BYTES = 4  # BLOCK_SUM: the kernel's float32 sum per block, int8 activations only
MODES = ("exact", "int8", "numpy", "ggml")
# format -> (bits of its codes, weights per scale, whether it has an offset per block)
_FORMS: dict[Q, tuple[int, int, bool]] = {
    Q.Q4_0: (4, 32, False),
    Q.Q4_1: (4, 32, True),
    Q.Q4_K: (4, 32, True),
    Q.Q5_0: (8, 32, False),
    Q.Q5_1: (8, 32, True),
    Q.Q8_0: (8, 32, False),
    Q.Q5_K: (8, 32, True),
    Q.Q6_K: (8, 16, False),
}


def bytes_per_weight(qtype: Q, mode: str) -> float:
    """Bytes one weight of a ``qtype`` matrix takes in ``mode``'s layout."""
    if mode not in MODES:
        raise ValueError(f"unknown layout {mode!r} (choose from {', '.join(MODES)})")
    if mode == "ggml":
        block, size = GGML_QUANT_SIZES[qtype]
        return size / block
    form = _FORMS.get(qtype)
    if form is None or mode == "numpy":
        return float(F32_BYTES)
    bits, block, offset = form
    scales = F32_BYTES / block
    if bits == 8 and mode == "exact":  # nibble split: two halves, two scales, an offset
        return 1.0 + 2 * scales + scales
    if mode == "int8":  # offsets as digit blocks: per weight when rows are 32 blocks long
        digits = row_bytes(block * block, bits, block) / (block * block) if offset else 0.0
        return _int8_codes_bytes(bits, block) + digits
    return bits / 8 + scales + (scales if offset else 0.0)


def _int8_codes_bytes(bits: int, block: int) -> float:
    """Codes, scale and the kernel's block sum, per weight (int8 activations)."""
    return bits / 8 + (F32_BYTES + BLOCK_SUM) / block


def held_bytes(qtype: Q, n_weights: int, mode: str, row_length: int = 0) -> int:
    """Bytes ``n_weights`` weights of a ``qtype`` matrix take in ``mode``'s layout: exact
    with the matrix's ``row_length`` (its inputs, GGUF's first dimension), else per
    weight as ``bytes_per_weight``."""
    form = _FORMS.get(qtype)
    if mode != "int8" or form is None or not form[2] or row_length <= 0:
        return round(n_weights * bytes_per_weight(qtype, mode))
    bits, block, _offset = form
    rows = n_weights // row_length
    codes = round(n_weights * _int8_codes_bytes(bits, block))
    return codes + rows * row_bytes(row_length, bits, block)
