"""A matrix held as the GGUF file stores it, multiplied by ggml where it lies.

``BlockMatrix`` is ``y [T, N] = x [T, K] @ W.T`` for ``W`` given as parts of consecutive
rows, each in its file format (Q4_0 ... Q6_K as block bytes, F32/F16 as values, BF16 as
bytes): 1.0x the file's bytes, no unpacking, no copy beyond the share itself. ggml
quantizes the activation rows for its quantized dot products (to Q8_0, Q8_1 or Q8_K, as
llama.cpp does): the error class of the onnxruntime ``int8`` mode, not the ``exact`` one.

An input-column share (O, down) holds the whole blocks covering its range, and its input
is zero-padded around the range (``pad``), as in the onnxruntime backend.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import gguf
import numpy as np
from gguf import GGMLQuantizationType as Q
from numpy.typing import NDArray

from reconciler.inference.kernels.ggml import Ggml, InitParams, load
from reconciler.inference.quant.blocks import QUANT_TYPES
from reconciler.inference.quant.buffers import empty

F32 = NDArray[np.float32]
ALIGN = 32  # ggml's CPU buffers want 32-byte aligned data
# The one-row graph (a decode step) is kept; others are built per call (a few us: their
# buffers, T x (K + N) floats, would add up over the row counts drafts give).
CACHED_ROWS = 1
_FLOAT_TYPES = {np.dtype(np.float32): Q.F32, np.dtype(np.float16): Q.F16}


def aligned_concat(arrays: list[NDArray[Any]]) -> NDArray[Any]:
    """The row-concatenation of same-width arrays of one dtype, in one C-contiguous array
    of a memory map of its own (``quant.buffers.empty``: page-aligned, as ggml's buffers
    need, and given back whole when freed); one copy, no temporary."""
    first = arrays[0]
    out = empty((sum(int(a.shape[0]) for a in arrays), *first.shape[1:]), first.dtype)
    row = 0
    for a in arrays:
        out[row : row + a.shape[0]] = a
        row += int(a.shape[0])
    return out


def aligned_copy(a: NDArray[Any]) -> NDArray[Any]:
    """A C-contiguous, page-aligned copy of ``a``."""
    return aligned_concat([a])


def _held(a: NDArray[Any]) -> NDArray[Any]:
    """``a`` itself if ggml can use it where it lies, else an aligned copy."""
    if a.flags.c_contiguous and a.ctypes.data % ALIGN == 0 and a.flags.writeable:
        return a
    return aligned_copy(a)


def _zeros(shape: tuple[int, int]) -> F32:
    """Page-aligned zeros (an anonymous memory map starts zeroed)."""
    return empty(shape, np.float32)


def columns(data: NDArray[Any], qtype: Q) -> int:
    """Weights a row of ``data`` (as stored) holds."""
    if data.dtype != np.uint8:
        return int(data.shape[1])
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    if data.shape[1] % size:
        raise ValueError(f"a {qtype.name} row of {data.shape[1]} bytes is not whole blocks")
    return int(data.shape[1]) // size * block


class _Plan:
    """One compute graph for ``rows`` input rows: metadata context, graph, bound buffers."""

    def __init__(self, m: BlockMatrix, rows: int) -> None:
        lib = m.ggml.lib
        size = lib.ggml_tensor_overhead() * (2 * len(m.parts) + 2) + lib.ggml_graph_overhead()
        self.ctx = lib.ggml_init(InitParams(size, None, True))
        self.x = _zeros((rows, m.k))
        self.ys = [_zeros((rows, int(p.shape[0]))) for p in m.parts]
        x = lib.ggml_new_tensor_2d(self.ctx, int(Q.F32), m.k, rows)
        self.graph = lib.ggml_new_graph(self.ctx)
        pairs = [(x, self.x)]
        for w, y in zip(m.tensors, self.ys, strict=True):
            out = lib.ggml_mul_mat(self.ctx, w, x)  # [N_i, T] in ggml's order: y [T, N_i]
            lib.ggml_build_forward_expand(self.graph, out)
            pairs.append((out, y))
        self.buffers = [_bind(lib, t, a) for t, a in pairs]

    def close(self, lib: Any) -> None:
        for buf in self.buffers:
            lib.ggml_backend_buffer_free(buf)
        lib.ggml_free(self.ctx)
        self.buffers, self.ctx = [], None


def _bind(lib: Any, tensor: int, array: NDArray[Any]) -> int:
    """Point a no-alloc tensor at a numpy array's memory (no copy)."""
    if lib.ggml_nbytes(tensor) != array.nbytes:
        raise ValueError(
            f"ggml expects {lib.ggml_nbytes(tensor)} bytes, the array has {array.nbytes}"
        )
    buf: int = lib.ggml_backend_cpu_buffer_from_ptr(array.ctypes.data, array.nbytes)
    if lib.ggml_backend_tensor_alloc(buf, tensor, array.ctypes.data) != 0:
        lib.ggml_backend_buffer_free(buf)
        raise ValueError("ggml refused a tensor's memory")
    return buf


class BlockMatrix:
    """``x @ W.T`` on rows stored as in the file (see the module docstring)."""

    def __init__(self, parts: list[tuple[NDArray[Any], Q]], threads: int,
                 pad: tuple[int, int] = (0, 0), ggml: Ggml | None = None) -> None:  # fmt: skip
        if not parts:
            raise ValueError("a BlockMatrix needs at least one part")
        self.ggml = ggml or library()
        self.threads, self.pad = threads, pad
        self.qtypes = [_qtype(data, qtype) for data, qtype in parts]
        widths = {columns(data, q) for (data, _), q in zip(parts, self.qtypes, strict=True)}
        if len(widths) != 1:
            raise ValueError(f"parts of one matrix have different widths {sorted(widths)}")
        self.k = widths.pop()
        self.parts = [_held(data) for data, _ in parts]  # as stored: no unpacking
        self.n = sum(int(p.shape[0]) for p in self.parts)
        self._weights_ctx, self.tensors, self._buffers = self._bind_weights()
        self._plans: dict[int, _Plan] = {}

    @property
    def shape(self) -> tuple[int, int]:
        """(N, K - padding): the logical matrix."""
        return self.n, self.k - self.pad[0] - self.pad[1]

    @property
    def nbytes(self) -> int:
        """Bytes held: the parts as stored."""
        return sum(int(p.nbytes) for p in self.parts)

    def _bind_weights(self) -> tuple[int, list[int], list[int]]:
        lib = self.ggml.lib
        ctx = lib.ggml_init(InitParams(lib.ggml_tensor_overhead() * len(self.parts), None, True))
        tensors, buffers = [], []
        for data, qtype in zip(self.parts, self.qtypes, strict=True):
            w = lib.ggml_new_tensor_2d(ctx, int(qtype), self.k, int(data.shape[0]))
            tensors.append(w)
            buffers.append(_bind(lib, w, data))
        return ctx, tensors, buffers

    def apply(self, x: F32) -> F32:
        """``x [T, K'] @ W.T`` -> ``[T, N]`` (``K'``: the logical width, before padding)."""
        rows, before = int(x.shape[0]), self.pad[0]
        with self.ggml.lock:  # engines sharing a cached shard share its buffers too
            plan = self._plans.get(rows) or _Plan(self, rows)
            try:
                plan.x[:, before : before + x.shape[1]] = x
                self.ggml.set_threads(self.threads)
                if self.ggml.lib.ggml_backend_graph_compute(self.ggml.backend, plan.graph) != 0:
                    raise RuntimeError("ggml failed to compute a matmul")
                return plan.ys[0].copy() if len(plan.ys) == 1 else np.concatenate(plan.ys, axis=1)
            finally:
                if rows <= CACHED_ROWS:
                    self._plans[rows] = plan
                else:
                    plan.close(self.ggml.lib)

    def close(self) -> None:
        """Free ggml's metadata (the arrays are numpy's)."""
        lib = self.ggml.lib
        for plan in self._plans.values():
            plan.close(lib)
        self._plans.clear()
        for buf in self._buffers:
            lib.ggml_backend_buffer_free(buf)
        self._buffers = []
        if self._weights_ctx:
            lib.ggml_free(self._weights_ctx)
            self._weights_ctx = 0

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


def _qtype(data: NDArray[Any], qtype: Q) -> Q:
    """ggml's type for stored rows: the formats the engine supports, nothing else (ggml
    knows more, but some need tables set up first or abort the process on a bad block:
    a model file must never crash an agent)."""
    if data.dtype == np.uint8:
        if qtype not in (*QUANT_TYPES, Q.BF16):
            raise ValueError(f"{qtype.name} is not a supported quantization type")
        return qtype
    found = _FLOAT_TYPES.get(data.dtype)
    if found is None:
        raise ValueError(f"ggml cannot hold {data.dtype} values")
    return found


def self_test(ggml: Ggml) -> str | None:
    """A Q4_0 matmul against numpy on the dequantized blocks; None if they agree."""
    rng = np.random.default_rng(7)
    n, k = 8, 64
    blocks = np.frombuffer(rng.bytes(n * k // 32 * 18), np.uint8).reshape(n * k // 32, 18).copy()
    blocks[:, :2] = rng.uniform(0.01, 0.02, len(blocks)).astype("<f2").view(np.uint8).reshape(-1, 2)
    raw = blocks.reshape(n, -1)
    x = rng.standard_normal((2, k)).astype(np.float32)
    want = x @ gguf.quants.dequantize(raw, Q.Q4_0).T
    try:
        got = BlockMatrix([(raw, Q.Q4_0)], 1, ggml=ggml).apply(x)
    except (ValueError, RuntimeError, OSError) as exc:
        return str(exc)
    err = float(np.abs(got - want).max() / np.abs(want).max())
    return None if err < 0.05 else f"a Q4_0 matmul is off by {err:.2%}"


class GgmlUnavailable(RuntimeError):
    """ggml cannot be used here; the message says why."""


@functools.cache
def _checked() -> Ggml | str:
    loaded = load()
    if isinstance(loaded, str):
        return loaded
    problem = self_test(loaded)
    return loaded if problem is None else f"{loaded.path} failed its self-test: {problem}"


def library() -> Ggml:
    """The loaded, self-tested library; :class:`GgmlUnavailable` if there is none."""
    checked = _checked()
    if isinstance(checked, str):
        raise GgmlUnavailable(checked)
    return checked


def unavailable_reason() -> str | None:
    """Why ggml cannot be used, or None when it can."""
    checked = _checked()
    return checked if isinstance(checked, str) else None


def available() -> bool:
    """Whether ggml loaded and passed its self-test."""
    return unavailable_reason() is None


def forget_library() -> None:
    """Look the library up again on next use (tests that change ``MESHNET_GGML_LIB``)."""
    load.cache_clear()
    _checked.cache_clear()
