"""Errors raised by the inference package.

Error tree::

    ModelError            a model file or directory cannot be used (names the file and why)
    WireError             a tensor frame from a peer is truncated or malformed
    CollectiveError       a collective operation failed (peer gone, shape mismatch, timeout)
"""

from __future__ import annotations

from pathlib import Path


class ModelError(Exception):
    """A model cannot be used: unsupported architecture, missing/truncated file, bad tokenizer."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class WireError(ValueError):
    """A tensor frame is truncated, has a bad header or a payload that does not match it."""


class CollectiveError(RuntimeError):
    """A collective operation could not complete."""
