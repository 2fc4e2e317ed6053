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
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from reconciler.inference.quant.buffers import PLACEHOLDER, lendable, release

THREADS_ENV = "MESHNET_THREADS"
# onnxruntime 1.29+ sends usage telemetry from Linux too (1DS: DNS lookups and uploads
# to a Microsoft host every few seconds). An agent talks to its pool and nothing else:
# its documented opt-out, read once when onnxruntime initialises, is set before any
# import of it (they all go through this package). A user's explicit value is kept.
TELEMETRY_ENV = "ORT_DISABLE_TELEMETRY"
os.environ.setdefault(TELEMETRY_ENV, "1")
GLOBAL_POOL_ENV = "MESHNET_ORT_SHARED_POOL"  # "0": a pool per session, never spinning


def threads_setting() -> int | None:
    """``MESHNET_THREADS`` when it is set to a positive number, else None."""
    value = os.environ.get(THREADS_ENV, "")
    return int(value) if value.strip().isdigit() and int(value) > 0 else None


def default_threads() -> int:
    """``MESHNET_THREADS`` if set, else min(2, cores)."""
    return threads_setting() or max(1, min(2, os.cpu_count() or 1))


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
    int8: bool | None = None,
) -> tuple[Any, list[Any]]:
    """An InferenceSession on the CPU provider for a serialized model, and what must be
    kept alive with it.

    ``external`` initializers (declared by ``GraphBuilder.const(big=True)``) are lent to
    the session without a copy (``buffers``). Those it never reads after creation (per
    :func:`unread_roles` for ``int8``: with None, those unread in both modes) are given
    back to the system right away: each weight is then held once, in the kernel's layout.
    Those arrays then read zeros: build each session from weights of its own.
    """
    import onnxruntime as ort

    so = _options(threads, shared_pool)
    if not external:
        return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"]), []
    lent = {name: lendable(a) for name, a in external.items()}
    session, values, borrowed = _session(model, so, lent)
    if not borrowed:  # onnxruntime holds copies: ours are not needed
        return session, []
    unread = unread_roles(int8) if int8 is not None else unread_roles(False) & unread_roles(True)
    for name, array in lent.items():
        if role(name) in unread:
            release(array)
    return session, [values, list(lent.values())]


def _session(model: bytes, so: Any, lent: dict[str, NDArray[Any]]) -> tuple[Any, list[Any], bool]:
    """(session, the OrtValues of ``lent``, whether the session borrows them).

    The model refers to a placeholder file for them (sparse, never read: each such
    initializer is overridden by ours), as onnxruntime checks that the file exists. With
    no writable temporary directory, onnxruntime gets them to copy instead."""
    import onnxruntime as ort

    values = [ort.OrtValue.ortvalue_from_numpy(a) for a in lent.values()]
    scratch = None
    try:
        scratch = tempfile.TemporaryDirectory(prefix="meshnet-ort-")
        with open(Path(scratch.name, PLACEHOLDER), "wb") as f:
            f.truncate(max(a.nbytes for a in lent.values()))
        Path(scratch.name, "model.onnx").write_bytes(model)
    except OSError:
        if scratch is not None:
            scratch.cleanup()
        so.add_external_initializers(list(lent), values)
        return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"]), values, False
    with scratch as tmp:
        for name, value in zip(lent, values, strict=True):
            so.add_initializer(name, value)
        path = str(Path(tmp, "model.onnx"))
        return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"]), values, True


def role(name: str) -> str:
    """The role of an initializer named by ``GraphBuilder.fresh``: ``q``, ``scale``..."""
    return name.rsplit("_", 1)[0]


@functools.cache
def unread_roles(int8: bool) -> frozenset[str]:
    """Roles of lent weights (``q``, ``scale``, ``offset``, ``dense``) that sessions of this
    onnxruntime build never read after creation, since they prepacked them into their own
    layout: found once by building a probe graph, then zeroing each role's arrays in turn
    and checking that its outputs stay the same (for one and for several rows)."""

    from reconciler.inference.kernels.graph import GraphBuilder
    from reconciler.inference.quant.blocks import Unpacked
    from reconciler.inference.quant.pack import to_nbits

    rng = np.random.default_rng(0)
    g = GraphBuilder(int8)
    a = g.input("x", 64)
    parts: list[Any] = [rng.standard_normal((16, 64)).astype(np.float32)]
    for bits in (4, 8):
        codes = rng.integers(0, 1 << bits, (16, 64)).astype(np.uint8)
        scale = rng.random((16, 2)).astype(np.float32)
        parts.append(to_nbits(Unpacked(codes, bits, 32, scale, scale), int8))
    g.output(g.linear(a, parts), "y", 48)
    lent = {name: lendable(v) for name, v in g.external.items()}
    session, _values, borrowed = _session(g.model_bytes(), _options(1), lent)
    if not borrowed:
        return frozenset()
    xs = [rng.standard_normal((t, 64)).astype(np.float32) for t in (1, 5)]
    unread = set()
    for name in sorted({role(n) for n in lent}):
        before = [session.run(None, {"x": x})[0] for x in xs]
        for n, v in lent.items():
            if role(n) == name:
                v[...] = 0
        after = [session.run(None, {"x": x})[0] for x in xs]
        if all(np.array_equal(b, c) for b, c in zip(before, after, strict=True)):
            unread.add(name)
    return frozenset(unread)


def trim_heap() -> None:
    """Give freed heap pages back to the system (glibc), after building sessions."""
    with contextlib.suppress(OSError, AttributeError):
        _libc().malloc_trim(0)


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
MMAP_THRESHOLD = 256 << 10


@functools.cache
def map_large_allocations() -> None:
    """Serve allocations from 256 KiB up with memory maps of their own (glibc; once).

    glibc's default threshold rises as large blocks are freed, after which onnxruntime's
    prepacked weights (MiB each) and the load's scratch come from the heap, where freed
    scratch stays resident between them (on the 1.5B model at TP=2, 6 MiB more peak)."""
    with contextlib.suppress(OSError, AttributeError):
        _libc().mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)


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
    # no arena: each session's arena kept its largest run's scratch (a 512-token prompt
    # on the 1.5B model at TP=1: 1.9 GiB held after it); malloc serves decode as fast
    so.enable_cpu_mem_arena = False
    if shared:
        so.use_per_session_threads = False
        return so
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return so
