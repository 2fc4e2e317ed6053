"""Weight buffers lent to onnxruntime, whose pages can be given back.

Sessions borrow their big initializers through ``SessionOptions.add_initializer``
(``session.make_session``): onnxruntime then reads our memory instead of copying it.
It prepacks most weights into its own layout at session creation and never reads ours
again, but keeps pointers to them for the session's life. So each weight lives in a
private anonymous memory map of its own: once the session is built, the pages of those
never read again are returned to the system (``madvise(MADV_DONTNEED)``), while the
mapping, and so every pointer onnxruntime holds, stays valid (it would read zeros).
"""

from __future__ import annotations

import mmap
from typing import Any

import numpy as np
from numpy.typing import NDArray

PLACEHOLDER = "weights.placeholder"  # the file lent initializers name in a model


def lendable(array: NDArray[Any]) -> NDArray[Any]:
    """``array``'s contents in a private anonymous memory map of their own (C order)."""
    if array.nbytes == 0 or _mapping(array) is not None:
        return np.ascontiguousarray(array)
    out = empty(array.shape, array.dtype)
    out[...] = array
    return out


def empty(shape: tuple[int, ...], dtype: Any) -> NDArray[Any]:
    """A new array (contents unset) in a private anonymous memory map of its own."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if nbytes == 0:
        return np.empty(shape, dtype)
    flags = getattr(mmap, "MAP_PRIVATE", 0) | getattr(mmap, "MAP_ANONYMOUS", 0)
    pages = mmap.mmap(-1, nbytes, flags=flags) if flags else mmap.mmap(-1, nbytes)
    return np.frombuffer(pages, dtype=dtype).reshape(shape)


def release(array: NDArray[Any]) -> bool:
    """Give the pages of ``array``'s memory map back to the system (it reads zeros
    after); False where it has none or the system cannot (then the pages stay)."""
    pages = _mapping(array)
    advice = getattr(mmap, "MADV_DONTNEED", None)
    if pages is None or advice is None:
        return False
    pages.madvise(advice)
    return True


def _mapping(array: NDArray[Any]) -> mmap.mmap | None:
    """The memory map behind ``array`` (through views), if any."""
    base: Any = array
    while base is not None:
        if isinstance(base, mmap.mmap):
            return base
        base = base.obj if isinstance(base, memoryview) else getattr(base, "base", None)
    return None
