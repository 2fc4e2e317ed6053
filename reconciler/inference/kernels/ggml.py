"""ggml, the C library under llama.cpp, through ``ctypes``: matmuls on GGUF blocks in place.

The library comes from the ``xllamacpp`` wheel (MIT, Xorbits; binary wheels for Linux
x86-64 and aarch64 and Windows, built with llama.cpp's CPU backend). Its extension module
exports ggml's C API; we load that file with ``ctypes`` (no Python import of the package)
and call only the handful of functions below. ggml's C ABI is not stable between
releases, so the version is pinned in ``pyproject.toml``; :func:`load` checks the
functions it needs and ``blockmatrix.library`` runs a small self-test once per process.
A library that fails either is reported unavailable (with the reason) and the engine
uses onnxruntime or numpy instead.

``MESHNET_GGML_LIB`` names another shared library exporting the same API (for example a
``libggml-cpu.so`` built with llama.cpp); ``MESHNET_GGML_LIB=off`` turns ggml off.
"""

from __future__ import annotations

import ctypes as C
import functools
import importlib.util
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.inference.kernels.session import threads_setting

LIB_ENV = "MESHNET_GGML_LIB"
PACKAGE = "xllamacpp"  # pinned in pyproject.toml: the ABI below is that release's
P = C.c_void_p


class InitParams(C.Structure):
    """``struct ggml_init_params``."""

    _fields_ = [("mem_size", C.c_size_t), ("mem_buffer", P), ("no_alloc", C.c_bool)]


_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "ggml_init": (P, [InitParams]),
    "ggml_free": (None, [P]),
    "ggml_tensor_overhead": (C.c_size_t, []),
    "ggml_graph_overhead": (C.c_size_t, []),
    "ggml_new_tensor_2d": (P, [P, C.c_int, C.c_int64, C.c_int64]),
    "ggml_mul_mat": (P, [P, P, P]),
    "ggml_new_graph": (P, [P]),
    "ggml_build_forward_expand": (None, [P, P]),
    "ggml_nbytes": (C.c_size_t, [P]),
    "ggml_row_size": (C.c_size_t, [C.c_int, C.c_int64]),
    "ggml_blck_size": (C.c_int64, [C.c_int]),
    "ggml_backend_cpu_init": (P, []),
    "ggml_backend_cpu_set_n_threads": (None, [P, C.c_int]),
    "ggml_backend_cpu_buffer_from_ptr": (P, [P, C.c_size_t]),
    "ggml_backend_buffer_free": (None, [P]),
    "ggml_backend_tensor_alloc": (C.c_int, [P, P, P]),
    "ggml_backend_graph_compute": (C.c_int, [P, P]),
}


def default_threads() -> int:
    """``MESHNET_THREADS`` if set, else 1.

    This build runs ggml's threads with OpenMP, and ggml's barriers spin: measured on the
    demo model (2 cores), one process decoded at 74 tok/s with 2 threads and 53 with 1,
    but two processes at once (two agents on one machine, or any other load) fell to 8
    tok/s each with 2 threads and stayed at 50-52 with 1 (``OMP_WAIT_POLICY=passive``:
    31 alone, 45-49 paired). One thread unless asked for more."""
    return threads_setting() or 1


@dataclass
class Ggml:
    """The loaded library, its CPU backend, and a lock: one graph computes at a time
    (the backend's work buffer is shared)."""

    lib: Any
    path: str
    backend: int
    lock: threading.Lock
    threads: int = 0

    def set_threads(self, threads: int) -> None:
        """Threads of the next computes (started per compute and joined after it, so an
        idle agent has no ggml threads: measured, a kept pool saved no time per call)."""
        if threads != self.threads:
            self.lib.ggml_backend_cpu_set_n_threads(self.backend, threads)
            self.threads = threads


def library_path() -> Path | None:
    """Where the library is: ``MESHNET_GGML_LIB``, else the installed xllamacpp's module."""
    named = os.environ.get(LIB_ENV, "").strip()
    if named:
        return None if named.lower() == "off" else Path(named)
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(folder.glob(f"{PACKAGE}*.so")) + sorted(folder.glob(f"{PACKAGE}*.pyd"))
    return found[0] if found else None


def installed() -> bool:
    """Whether a library is there to load (cheap: nothing is loaded)."""
    return library_path() is not None


@functools.cache
def load() -> Ggml | str:
    """The library with its signatures set and its CPU backend started (once), or why
    not. ``blockmatrix.library`` adds the self-test."""
    path = library_path()
    if path is None:
        return f"ggml is off or not installed (pip package {PACKAGE}, or {LIB_ENV})"
    return open_library(path)


def open_library(path: Path) -> Ggml | str:
    """ggml from one library exporting its API, or from a directory holding a build's
    ``libggml-cpu.so`` (which reaches ``libggml-base.so`` through its own dependencies);
    the reason as a string when it cannot be used."""
    if path.is_dir():
        path = path / "libggml-cpu.so"
    try:
        lib = C.CDLL(str(path))
    except OSError as exc:
        return f"cannot load ggml from {path}: {exc}"
    missing = [name for name in _SIGNATURES if not hasattr(lib, name)]
    if missing:
        return f"{path} lacks ggml functions {', '.join(missing)}"
    for name, (restype, argtypes) in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    backend = lib.ggml_backend_cpu_init()
    if not backend:
        return f"{path}: ggml's CPU backend did not start"
    return Ggml(lib, str(path), backend, threading.Lock())
