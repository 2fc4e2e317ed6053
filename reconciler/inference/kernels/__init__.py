"""The kernel seam: how a rank multiplies by its weights.

- ``numpy``: the share is dequantized to float32 at load and multiplied with numpy's
  BLAS (``weights.ShardWeights``). The oracle, and the fallback where onnxruntime has no
  wheel.
- ``onnxruntime``: the share stays in its GGUF block format, repacked for
  ``MatMulNBits``, in fused graphs (``kernels.fused.FusedShard``).
- ``ggml``: the share stays exactly as the file stores it (1.0x its bytes, every
  format) and ggml multiplies on the blocks in place (``kernels.blockmatrix``), with the
  numpy forward pass around it. Its activations are quantized to 8 bits per block, as in
  llama.cpp: ``int8`` only. A member also picks it on its own when the int8 layout does
  not fit its free memory (``jobs.plans.choose_layout``).

``auto`` picks onnxruntime when it can be imported. Activations are ``int8`` (the
default: ``accuracy_level=4``, quantized per block inside the kernel, as llama.cpp does
for its Q4 dot products; about twice as fast as exact on the demo model, 97% top-1
agreement with it) or ``exact`` (float32: the oracle, transformers' greedy tokens).
"""

from __future__ import annotations

import os

from reconciler.inference.config import ModelConfig
from reconciler.inference.kernels import blockmatrix
from reconciler.inference.kernels.session import THREADS_ENV, available, default_threads

KERNELS = ("auto", "numpy", "onnxruntime", "ggml")
ACTIVATIONS = ("exact", "int8")
KERNELS_ENV, ACTIVATIONS_ENV = "MESHNET_KERNELS", "MESHNET_ACTIVATIONS"
DEFAULT_ACTIVATIONS = "int8"


def default_kernels() -> str:
    """``MESHNET_KERNELS`` if set, else ``auto``."""
    return os.environ.get(KERNELS_ENV, "").strip() or "auto"


def default_activations() -> str:
    """``MESHNET_ACTIVATIONS`` if set, else the documented default."""
    return os.environ.get(ACTIVATIONS_ENV, "").strip() or DEFAULT_ACTIVATIONS


def unsupported(config: ModelConfig | None) -> str | None:
    """Why the onnxruntime backend cannot run a model, or None.

    Its attention (``GroupQueryAttention``) needs heads of a multiple of 16 wide (real
    models use 64, 128 or 256)."""
    if config is None:
        return None
    if config.head_dim % 16:
        return (
            "onnxruntime's attention needs a head width that is a multiple of 16, "
            f"not {config.head_dim}"
        )
    return None


def resolve(kernels: str, config: ModelConfig | None = None) -> str:
    """``numpy``, ``onnxruntime`` or ``ggml`` for a user's choice; ValueError if unavailable.

    ``auto`` takes onnxruntime when it is installed and can run the model."""
    if kernels not in KERNELS:
        raise ValueError(f"unknown kernels {kernels!r} (choose from {', '.join(KERNELS)})")
    if kernels == "auto":
        return "onnxruntime" if available() and unsupported(config) is None else "numpy"
    if kernels == "ggml":
        reason = blockmatrix.unavailable_reason()
        if reason:
            raise ValueError(f"{reason}: use --kernels onnxruntime or numpy")
    if kernels == "onnxruntime":
        if not available():
            raise ValueError("onnxruntime (and onnx) are not installed: use --kernels numpy")
        reason = unsupported(config)
        if reason:
            raise ValueError(f"{reason}: use --kernels numpy")
    return kernels


__all__ = [
    "ACTIVATIONS",
    "ACTIVATIONS_ENV",
    "DEFAULT_ACTIVATIONS",
    "KERNELS",
    "KERNELS_ENV",
    "THREADS_ENV",
    "available",
    "default_activations",
    "default_kernels",
    "default_threads",
    "resolve",
    "unsupported",
]
