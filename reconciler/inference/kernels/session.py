"""onnxruntime sessions with this project's settings: one shared thread pool, few threads.

A pool per session with spinning threads made a decode loop of many small sessions run
at under 1 tok/s on two shared cores: their idle workers spun against each other. A
pool per session without spinning is safe but pays a wake-up per parallel operator.
With int8 activations every session of the process shares one pool instead
(onnxruntime's global thread pool, sized by the first session: ``--threads`` /
``MESHNET_THREADS``, default min(2, cores)): on the demo model at 2 threads, 85-107
tok/s against 71-81 with a non-spinning pool per session. With float32 activations the
shared (spinning) pool measured worse and unsteady (25-32 against 50-52 tok/s), so
those sessions keep non-spinning pools of their own. The first session of a process
decides; ``MESHNET_ORT_SHARED_POOL=0`` never shares.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import threading
from typing import Any

import numpy as np
from numpy.typing import NDArray

THREADS_ENV = "MESHNET_THREADS"
GLOBAL_POOL_ENV = "MESHNET_ORT_SHARED_POOL"  # "0": a pool per session, never spinning


def default_threads() -> int:
    """``MESHNET_THREADS`` if set, else min(2, cores)."""
    value = os.environ.get(THREADS_ENV, "")
    if value.strip().isdigit() and int(value) > 0:
        return int(value)
    return max(1, min(2, os.cpu_count() or 1))


def available() -> bool:
    """Whether onnxruntime (and onnx, to build graphs) can be imported."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def make_session(
    model: bytes,
    threads: int,
    external: dict[str, NDArray[Any]] | None = None,
    shared_pool: bool = False,
) -> tuple[Any, list[Any]]:
    """An InferenceSession on the CPU provider for a serialized model, and what must be
    kept alive with it.

    ``external`` initializers are handed over in memory, not copied into the model.
    Where onnxruntime repacks them at load and never reads them again (checked once by
    :func:`repacks_weights`), they are dropped: the process then holds each weight once,
    in the kernel's layout."""
    import onnxruntime as ort

    so = _options(threads, shared_pool)
    keep: list[Any] = []
    if external:
        values = [ort.OrtValue.ortvalue_from_numpy(a) for a in external.values()]
        so.add_external_initializers(list(external), values)
        keep = [] if repacks_weights() else [values, list(external.values())]
    session = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    return session, keep


@functools.cache
def repacks_weights() -> bool:
    """Whether this onnxruntime build copies (prepacks) the weights of MatMulNBits and
    MatMul at session creation, so that our arrays are not read afterwards: a probe
    graph is run, its weight arrays are overwritten, and it is run again."""
    import onnxruntime as ort

    from reconciler.inference.kernels.graph import GraphBuilder
    from reconciler.inference.quant.blocks import Unpacked
    from reconciler.inference.quant.pack import to_nbits

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 64)).astype(np.float32)
    for int8 in (False, True):
        g = GraphBuilder(int8)
        a = g.input("x", 64)
        parts: list[Any] = [rng.standard_normal((16, 64)).astype(np.float32)]
        for bits in (4, 8):
            codes = rng.integers(0, 1 << bits, (16, 64)).astype(np.uint8)
            scale = rng.random((16, 2)).astype(np.float32)
            parts.append(to_nbits(Unpacked(codes, bits, 32, scale, scale), int8))
        g.output(g.linear(a, parts), "y", 48)
        so = _options(1)
        arrays = list(g.external.values())
        values = [ort.OrtValue.ortvalue_from_numpy(v) for v in arrays]
        so.add_external_initializers(list(g.external), values)
        session = ort.InferenceSession(g.model_bytes(), so, providers=["CPUExecutionProvider"])
        before = session.run(None, {"x": x})[0]
        for v in arrays:
            v[...] = 0
        if not np.array_equal(before, session.run(None, {"x": x})[0]):
            return False
    return True


def trim_heap() -> None:
    """Give freed heap pages back to the system (glibc), after building sessions."""
    with contextlib.suppress(OSError, AttributeError):
        _libc().malloc_trim(0)


@functools.cache
def _libc() -> Any:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


_GLOBAL_POOL: list[int] = []  # the process-wide pool's size, once created
_GLOBAL_POOL_LOCK = threading.Lock()  # two ranks' load threads may start at once


def _global_pool(threads: int, wanted: bool) -> bool:
    """Whether sessions share the process-wide pool.

    The first session of the process decides, and sizes the pool with its thread count
    (onnxruntime needs the pool before any session, and then every session must use
    it); with one thread, or ``MESHNET_ORT_SHARED_POOL=0``, each session gets its own
    pool, without spinning."""
    import onnxruntime as ort

    with _GLOBAL_POOL_LOCK:
        if not _GLOBAL_POOL:
            shared = wanted and threads > 1 and os.environ.get(GLOBAL_POOL_ENV, "1") != "0"
            if shared:
                ort.set_global_thread_pool_sizes(threads, 1)
            _GLOBAL_POOL.append(threads if shared else 0)
        return _GLOBAL_POOL[0] > 0


def _options(threads: int, shared_pool: bool = False) -> Any:
    import onnxruntime as ort

    shared = _global_pool(threads, shared_pool)  # before the first SessionOptions
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    if shared:
        so.use_per_session_threads = False
        return so
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return so
