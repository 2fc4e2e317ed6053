"""Canonical codes -> onnxruntime ``MatMulNBits`` operands (and fused matrices).

``MatMulNBits`` takes ``B`` as ``[N, K / block, block * bits / 8]`` bytes (4-bit: element
``2i`` in the low nibble of byte ``i``, ``2i + 1`` in the high one), float scales
``[N, K / block]`` and, when no zero points are given, zero point 8 (4-bit) or 128
(8-bit): exactly our canonical codes. What it cannot take, a float offset per block, is
applied beside it as ``block_sums(x) @ offset.T``, 1/``block`` of the work; with int8
activations the kernel does that product itself, on the offsets written as digit blocks
after the codes (``quant.digits``).

8-bit codes run in one of two ways:

- ``int8`` activations (``accuracy_level=4``): as 8-bit ``MatMulNBits`` (fast).
- exact (fp32 activations): 8-bit ``MatMulNBits`` has no fast fp32 path, so the code is
  split into nibbles, ``u = 16 hi + lo``, ``s (u - 128) = 16 s (hi - 8) + s (lo - 8) + 8 s``:
  one 4-bit ``MatMulNBits`` over ``[x, x]`` with ``K`` doubled, scales ``16 s`` and ``s``,
  and ``8 s`` added to the offsets. Still exact, on the fast 4-bit path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from reconciler.inference.quant.blocks import F32, U8, Unpacked
from reconciler.inference.quant.buffers import empty, lendable
from reconciler.inference.quant.digits import digit_blocks, digit_count


@dataclass
class NBits:
    """One ``MatMulNBits`` operand set: ``y = x' @ W.T (+ block_sums(x) @ offset_t)``."""

    n: int  # N output columns
    k: int  # K input columns (of x, before any duplication)
    bits: int  # 4 or 8
    block: int  # 16 or 32
    packed: U8  # [N, K' / block, block * bits / 8] with K' = K * repeat
    scales: F32  # [N, K' / block]
    offset_t: F32 | None  # [K / block, N]
    repeat: int  # 2 when x is fed twice (nibble split), else 1
    int8: bool = False  # for int8 activations: the kernel keeps a block sum per scale
    digits: int = 0  # int8 with offsets: x is fed as [x | S | ...], ``quant.digits``
    groups: int = 0  # ... S padded to this many blocks, once per digit

    @property
    def k_fed(self) -> int:
        """Input columns the kernel reads (x, repeated, and the digit groups' sums)."""
        return self.k * self.repeat + self.digits * self.groups * self.block

    @property
    def nbytes(self) -> int:
        """Bytes held: ours, or the kernel's prepacked copy of the same size, and with
        int8 activations the kernel's float32 block sum per block (``quant.layout``)."""
        extra = 0 if self.offset_t is None else self.offset_t.nbytes
        sums = self.scales.nbytes if self.int8 else 0  # one float32 per scale
        return int(self.packed.nbytes + self.scales.nbytes + extra + sums)


def concat_rows(parts: list[Unpacked]) -> list[Unpacked]:
    """Fuse matrices that read the same input (Q/K/V, gate/up) where their forms agree.

    Consecutive parts with the same bits and block become one; offsets missing on some
    parts are zeros there. Returns the fused parts in order (their outputs concatenate).
    """
    groups: list[list[Unpacked]] = []
    for p in parts:
        if groups and (groups[-1][0].bits, groups[-1][0].block) == (p.bits, p.block):
            groups[-1].append(p)
        else:
            groups.append([p])
    return [_merge(g) for g in groups]


def _merge(group: list[Unpacked]) -> Unpacked:
    if len(group) == 1:
        return group[0]
    offsets = None
    if any(p.offset is not None for p in group):
        offsets = _rows(
            [p.offset if p.offset is not None else np.zeros_like(p.scale) for p in group]
        )
    packed = all(p.packed4 is not None for p in group)
    return Unpacked(
        None if packed else np.concatenate([p.code_matrix() for p in group]),
        group[0].bits,
        group[0].block,
        _rows([p.scale for p in group]),
        offsets,
        _rows([p.packed4 for p in group if p.packed4 is not None]) if packed else None,
    )


def _rows(arrays: list[NDArray[Any]]) -> NDArray[Any]:
    """Row-concatenation, in a buffer a session can borrow (no copy later)."""
    rows = sum(a.shape[0] for a in arrays)
    out = empty((rows, *arrays[0].shape[1:]), arrays[0].dtype)
    np.concatenate(arrays, out=out)
    return out


def to_nbits(u: Unpacked, int8_activations: bool) -> NBits:
    """Kernel operands for one canonical matrix (see the module docstring), each in a
    buffer of its own that a session can borrow and give back (``quant.buffers``)."""
    n, k = u.shape
    if int8_activations and u.offset is not None:
        return _with_digits(u)
    if u.packed4 is not None:
        packed = lendable(u.packed4.reshape(n, k // u.block, u.block // 2))
        scale = lendable(u.scale)
        return NBits(n, k, 4, u.block, packed, scale, _t(u.offset), 1, int8_activations)
    codes = u.code_matrix()
    if u.bits == 4 or int8_activations:
        packed = _pack(
            codes, u.bits, u.block, empty((n, k // u.block, u.block * u.bits // 8), np.uint8)
        )
        scale = lendable(u.scale)
        return NBits(n, k, u.bits, u.block, packed, scale, _t(u.offset), 1, int8_activations)
    nb = k // u.block  # nibble split, written in place: [hi blocks | lo blocks]
    packed = empty((n, 2 * nb, u.block // 2), np.uint8)
    _pack(codes >> np.uint8(4), 4, u.block, packed[:, :nb])
    _pack(codes & np.uint8(15), 4, u.block, packed[:, nb:])
    scales = lendable(np.concatenate([16.0 * u.scale, u.scale], axis=1).astype(np.float32))
    offset = 8.0 * u.scale if u.offset is None else u.offset + 8.0 * u.scale
    return NBits(n, k, 4, u.block, packed, scales, _t(offset), 2)


def _with_digits(u: Unpacked) -> NBits:
    """int8 activations and offsets: the offsets as digit blocks after the codes."""
    n, k = u.shape
    assert u.offset is not None
    digit_codes, digit_scales = digit_blocks(u.offset, u.bits, u.block)
    kb, extra = k // u.block, digit_codes.shape[1]
    packed = empty((n, kb + extra, u.block * u.bits // 8), np.uint8)
    if u.packed4 is not None:
        packed[:, :kb] = u.packed4.reshape(n, kb, u.block // 2)
    else:
        _pack(u.code_matrix(), u.bits, u.block, packed[:, :kb])
    _pack(digit_codes.reshape(n, extra * u.block), u.bits, u.block, packed[:, kb:])
    scales = empty((n, kb + extra), np.float32)
    np.concatenate([u.scale, digit_scales], axis=1, out=scales)
    digits = digit_count(u.bits)
    return NBits(n, k, u.bits, u.block, packed, scales, None, 1, True, digits, extra // digits)


def _pack(codes: U8, bits: int, block: int, out: U8) -> U8:
    """Codes [N, K] into ``out`` [N, K / block, block * bits / 8]."""
    n, k = codes.shape
    if bits == 8:
        out[...] = codes.reshape(n, k // block, block)
        return out
    pairs = codes.reshape(n, k // 2, 2)
    out[...] = (pairs[..., 0] | (pairs[..., 1] << np.uint8(4))).reshape(out.shape)  # [N, K/2]
    return out


def _t(offset: F32 | None) -> F32 | None:
    return None if offset is None else lendable(np.asarray(offset.T, dtype=np.float32))
