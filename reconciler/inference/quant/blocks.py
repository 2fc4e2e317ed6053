"""Unpack GGUF quantization blocks into codes, scales and offsets (no float weights).

The layouts follow ggml (``ggml-common.h``) as read by ``gguf.quants``; ``dequantize``
(the numpy oracle) is ``gguf.quants.dequantize`` itself, and the tests check that
``Unpacked.dequantize()`` agrees with it for every format.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gguf
import numpy as np
from gguf import GGMLQuantizationType as Q
from numpy.typing import NDArray

F32 = NDArray[np.float32]
U8 = NDArray[np.uint8]

FLOAT_TYPES = (Q.F32, Q.F16, Q.BF16)
QUANT_TYPES = (Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q8_0, Q.Q4_K, Q.Q5_K, Q.Q6_K)
_SHIFT4 = np.array([0, 4], dtype=np.uint8).reshape(1, 2, 1)


@dataclass
class Unpacked:
    """``W = scale * (codes - zero) + offset`` per block; zero = 8 (4-bit) or 128 (8-bit)."""

    codes: U8 | None  # [N, K] unsigned codes (None when only ``packed4`` is kept)
    bits: int  # 4 or 8
    block: int  # input columns per scale (16 or 32)
    scale: F32  # [N, K / block]
    offset: F32 | None  # [N, K / block] or None when every offset is zero
    packed4: U8 | None = None  # [N, K / 2] 4-bit codes already in MatMulNBits' layout

    @property
    def zero(self) -> int:
        """The integer zero point of the codes."""
        return 1 << (self.bits - 1)

    @property
    def shape(self) -> tuple[int, int]:
        """(N, K)."""
        if self.codes is not None:
            return int(self.codes.shape[0]), int(self.codes.shape[1])
        assert self.packed4 is not None
        return int(self.packed4.shape[0]), 2 * int(self.packed4.shape[1])

    def code_matrix(self) -> U8:
        """Codes ``[N, K]``, unpacking ``packed4`` if that is all there is."""
        if self.codes is not None:
            return self.codes
        assert self.packed4 is not None
        n, k = self.shape
        pairs = np.stack([self.packed4 & np.uint8(15), self.packed4 >> np.uint8(4)], axis=-1)
        return pairs.reshape(n, k)

    def dequantize(self) -> F32:
        """Float32 weights [N, K] (for tests and the numpy backend)."""
        n, k = self.shape
        q = self.code_matrix().reshape(n, k // self.block, self.block).astype(np.float32)
        q -= float(self.zero)
        w = q * self.scale[..., None]
        if self.offset is not None:
            w += self.offset[..., None]
        return w.reshape(n, k)


def block_size(qtype: Q) -> int:
    """Elements per storage block (1 for float types)."""
    return int(gguf.GGML_QUANT_SIZES[qtype][0])


def dequantize(raw: NDArray[np.generic], qtype: Q) -> F32:
    """Float32 values of raw GGUF data (rows of blocks, or float arrays)."""
    if raw.dtype == np.float32:
        return np.array(raw, dtype=np.float32)
    if qtype == Q.Q8_0 and raw.dtype == np.uint8:
        return _q8_0_values(raw)
    out = gguf.quants.dequantize(np.ascontiguousarray(raw), qtype)
    return np.asarray(out, dtype=np.float32)


def _q8_0_values(raw: NDArray[np.generic]) -> F32:
    """Q8_0 rows as float32, as ``gguf.quants`` computes them (``d * q``) in three numpy
    calls: an embedding row between onnxruntime calls took 40 µs instead of 125."""
    blocks = np.ascontiguousarray(raw).reshape(-1, 34)
    d = blocks[:, :2].copy().view(np.float16).astype(np.float32)  # [nb, 1]
    values: F32 = blocks[:, 2:].view(np.int8) * d  # [nb, 32]
    return values.reshape(*raw.shape[:-1], raw.shape[-1] // 34 * 32)


def unpack(raw: U8, qtype: Q) -> Unpacked:
    """Rows of raw blocks ``[N, n_blocks * type_size]`` -> canonical codes/scales/offsets.

    Unpacked a few rows at a time (about ``CHUNK_BLOCKS`` blocks) into the outputs, so
    the scratch stays small whatever the matrix."""
    size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    fn = _UNPACKERS.get(qtype)
    if fn is None:
        raise ValueError(f"{qtype.name} is not a supported quantization type")
    n = raw.shape[0]
    nb = raw.shape[1] // type_size
    step = max(1, CHUNK_BLOCKS // max(nb, 1))
    outs: list[NDArray[Any] | None] = []
    bits = sub = 0
    for r0 in range(0, max(n, 1), step):
        blocks = np.ascontiguousarray(raw[r0 : r0 + step]).reshape(-1, type_size)
        codes, bits, sub, scale, offset = fn(blocks)
        if not outs:
            outs = [_rows_like(a, n * nb) for a in (codes, scale, offset)]
        for out, a in zip(outs, (codes, scale, offset), strict=True):
            if out is not None and a is not None:
                out[r0 * nb : r0 * nb + len(a)] = a
    codes_all, scale_all, offset_all = outs
    assert codes_all is not None and scale_all is not None
    k = nb * size
    packed = codes_all.shape[1] * 2 == size  # 4-bit codes delivered already packed
    return Unpacked(
        None if packed else codes_all.reshape(n, k),
        bits,
        sub,
        scale_all.reshape(n, k // sub),
        None if offset_all is None else offset_all.reshape(n, k // sub),
        codes_all.reshape(n, k // 2) if packed else None,
    )


CHUNK_BLOCKS = 1 << 15  # blocks unpacked per step (their scratch: a few MiB)


def _rows_like(a: NDArray[Any] | None, rows: int) -> NDArray[Any] | None:
    """An output for ``rows`` blocks of what ``a`` holds for some (scales as float32)."""
    if a is None:
        return None
    dtype = np.uint8 if a.dtype == np.uint8 else np.float32
    return np.empty((rows, *a.shape[1:]), dtype=dtype)


_Result = tuple[U8, int, int, F32, F32 | None]


def _f16(b: U8) -> F32:
    return b.view(np.float16).astype(np.float32)


def _nibbles(qs: U8) -> U8:
    """ggml's 32-element nibble order: low nibbles are elements 0..15, high 16..31."""
    nb = qs.shape[0]
    return ((qs.reshape(nb, -1, 1, 16) >> _SHIFT4) & np.uint8(15)).reshape(nb, -1)


def _high_bits(qh: U8) -> U8:
    """Q5_0/Q5_1: bit i of a little-endian uint32 is element i's fifth bit."""
    bits = qh.view(np.uint32).reshape(-1, 1) >> np.arange(32, dtype=np.uint32)
    return (bits & np.uint32(1)).astype(np.uint8)


def _repack4(qs: U8) -> U8:
    """ggml's 16 bytes of a 32-block (byte j: elements j and j + 16) -> MatMulNBits'
    (byte i: elements 2i and 2i + 1), without widening to one code per byte."""
    w = qs.view(np.uint16)  # [nb, 8]: byte 2i in the low half, byte 2i + 1 in the high
    out = np.empty((qs.shape[0], 16), dtype=np.uint8)
    out[:, :8] = (w & np.uint16(0x0F)) | ((w >> np.uint16(4)) & np.uint16(0xF0))  # 0..15
    out[:, 8:] = ((w >> np.uint16(4)) & np.uint16(0x0F)) | ((w >> np.uint16(8)) & np.uint16(0xF0))
    return out  # elements 16..31 in the second half


def _q4_0(b: U8) -> _Result:
    return _repack4(b[:, 2:]), 4, 32, _f16(b[:, :2]), None


def _q4_1(b: U8) -> _Result:
    d, m = _f16(b[:, :2]), _f16(b[:, 2:4])
    return _repack4(b[:, 4:]), 4, 32, d, m + 8.0 * d


def _q5_0(b: U8) -> _Result:
    d = _f16(b[:, :2])
    codes = _nibbles(b[:, 6:]) | (_high_bits(b[:, 2:6]) << np.uint8(4))
    return codes + np.uint8(112), 8, 32, d, None  # q - 16 = (q + 112) - 128


def _q5_1(b: U8) -> _Result:
    d, m = _f16(b[:, :2]), _f16(b[:, 2:4])
    codes = _nibbles(b[:, 8:]) | (_high_bits(b[:, 4:8]) << np.uint8(4))
    return codes + np.uint8(112), 8, 32, d, m + 16.0 * d


def _q8_0(b: U8) -> _Result:
    return b[:, 2:] ^ np.uint8(0x80), 8, 32, _f16(b[:, :2]), None  # q + 128 for int8 q


def _k_scales(b: U8) -> tuple[F32, F32]:
    """Q4_K/Q5_K: per-32 sub-block scale d*sc and minimum dmin*m, each [nb, 8]."""
    d, dmin = _f16(b[:, :2]), _f16(b[:, 2:4])
    sc, mn = gguf.quants.Q4_K.get_scale_min(b[:, 4:16])
    return d * sc.astype(np.float32), dmin * mn.astype(np.float32)


def _q4_k(b: U8) -> _Result:
    s, m = _k_scales(b)
    nb = b.shape[0]
    qs = b[:, 16:].reshape(nb, -1, 1, 32) >> _SHIFT4
    codes = (qs & np.uint8(15)).reshape(nb, 256)
    return codes, 4, 32, s, 8.0 * s - m


def _q5_k(b: U8) -> _Result:
    s, m = _k_scales(b)
    nb = b.shape[0]
    qh, qs = b[:, 16:48], b[:, 48:]
    ql = ((qs.reshape(nb, -1, 1, 32) >> _SHIFT4) & np.uint8(15)).reshape(nb, 8, 32)
    hi = qh.reshape(nb, 1, 32) >> np.arange(8, dtype=np.uint8).reshape(1, 8, 1)
    codes = (ql | ((hi & np.uint8(1)) << np.uint8(4))).reshape(nb, 256)
    return codes + np.uint8(112), 8, 32, s, 16.0 * s - m


def _q6_k(b: U8) -> _Result:
    nb = b.shape[0]
    ql, qh, sc, d = b[:, :128], b[:, 128:192], b[:, 192:208], _f16(b[:, 208:210])
    lo = ((ql.reshape(nb, -1, 1, 64) >> _SHIFT4) & np.uint8(15)).reshape(nb, -1, 32)
    shift = np.array([0, 2, 4, 6], dtype=np.uint8).reshape(1, 1, 4, 1)
    hi = ((qh.reshape(nb, -1, 1, 32) >> shift) & np.uint8(3)).reshape(nb, -1, 32)
    codes = (lo | (hi << np.uint8(4))).reshape(nb, 256)
    s = d * sc.view(np.int8).astype(np.float32)  # [nb, 16] per 16 elements
    return codes + np.uint8(96), 8, 16, s, None  # q - 32 = (q + 96) - 128


_UNPACKERS: dict[Q, Callable[[U8], _Result]] = {
    Q.Q4_0: _q4_0,
    Q.Q4_1: _q4_1,
    Q.Q5_0: _q5_0,
    Q.Q5_1: _q5_1,
    Q.Q8_0: _q8_0,
    Q.Q4_K: _q4_k,
    Q.Q5_K: _q5_k,
    Q.Q6_K: _q6_k,
}
