"""GGUF block formats: raw blocks -> integer codes with per-block scales and offsets.

Every supported format is brought to one canonical form per output row ``n`` and block
``b`` of ``block`` input columns::

    W[n, k] = scale[n, b] * (code[n, k] - zero) + offset[n, b]

with ``code`` unsigned and ``zero`` = 8 for 4-bit codes (Q4_0, Q4_1, Q4_K) and 128 for
8-bit codes (Q5_0, Q5_1, Q8_0, Q5_K, Q6_K; 5- and 6-bit codes are shifted so that their
own zero lands on 128, which keeps offsets small for int8 activations). ``offset`` carries Q4_1/Q5_1/K-quant
minimums and any zero point other than the canonical one (``d*q + m = d*(q-8) + (m+8d)``),
so every weight stays on an integer zero point (float zero points are 40x slower in
onnxruntime's MatMulNBits). See ``blocks.unpack`` and ``pack`` for the kernel layouts.
"""

from reconciler.inference.quant.blocks import (
    FLOAT_TYPES,
    QUANT_TYPES,
    Unpacked,
    block_size,
    dequantize,
    unpack,
)

__all__ = ["FLOAT_TYPES", "QUANT_TYPES", "Unpacked", "block_size", "dequantize", "unpack"]
