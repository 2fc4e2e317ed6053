"""Read a rank's share of a matrix as kernel parts: quantized blocks where the file has
them (GGUF), float32 otherwise (F32/F16/BF16 tensors, Hugging Face folders).

Input-column shares (O, down) take the whole blocks covering the range; the columns a
rank holds beyond its range meet zeros in its (padded) input, so they add nothing.
"""

from __future__ import annotations

from typing import Any, Protocol

import gguf
import numpy as np
from numpy.typing import NDArray

from reconciler.inference.quant.blocks import F32, FLOAT_TYPES, Unpacked, unpack
from reconciler.inference.quant.pack import NBits, concat_rows, to_nbits
from reconciler.inference.weights import TensorSource

Part = NBits | F32


class RawSource(Protocol):
    """A TensorSource that also hands out blocks as stored (``GGUFSource``)."""

    def qtype(self, name: str) -> gguf.GGMLQuantizationType: ...

    def raw_rows(self, name: str, start: int, end: int) -> NDArray[Any]: ...

    def raw_cols(self, name: str, start: int, end: int) -> tuple[NDArray[Any], int, int]: ...


def _quantized(source: TensorSource, name: str) -> RawSource | None:
    if not hasattr(source, "raw_rows"):
        return None
    raw: Any = source
    return raw if raw.qtype(name) not in FLOAT_TYPES else None


def row_parts(source: TensorSource, items: list[tuple[str, int, int]], int8: bool) -> list[Part]:
    """Kernel parts for the row-concatenation of ``(name, start, end)`` row ranges."""
    pieces: list[Unpacked | F32] = []
    for name, start, end in items:
        if end <= start:
            continue
        raw = _quantized(source, name)
        if raw is None:
            pieces.append(np.ascontiguousarray(source.rows(name, start, end), dtype=np.float32))
        else:
            pieces.append(unpack(np.asarray(raw.raw_rows(name, start, end)), raw.qtype(name)))
    return _fuse(pieces, int8)


def col_parts(
    source: TensorSource, name: str, start: int, end: int, int8: bool
) -> tuple[list[Part], int, int]:
    """Kernel parts for input columns ``[start, end)``, and the zero padding (before,
    after) its input needs."""
    raw = _quantized(source, name)
    if raw is None:
        dense = np.ascontiguousarray(source.cols(name, start, end), dtype=np.float32)
        return [dense], 0, 0
    data, before, after = raw.raw_cols(name, start, end)
    return _fuse([unpack(np.asarray(data), raw.qtype(name))], int8), before, after


def _fuse(pieces: list[Unpacked | F32], int8: bool) -> list[Part]:
    out: list[Part] = []
    run: list[Unpacked] = []
    for p in [*pieces, None]:
        if isinstance(p, Unpacked):
            run.append(p)
            continue
        out.extend(to_nbits(u, int8) for u in concat_rows(run))
        run = []
        if p is not None:
            if out and not isinstance(out[-1], NBits):
                out[-1] = np.concatenate([out[-1], p])
            else:
                out.append(p)
    return out


def parts_nbytes(parts: list[Part]) -> int:
    """Bytes held by parts."""
    return sum(p.nbytes for p in parts)
