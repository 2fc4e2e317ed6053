"""A model's :class:`ModelCost` from its config and the byte sizes of its file's tensors.

Pure: the caller reads the sizes (GGUF tensor records, safetensors headers) and passes
them in. A tensor belongs to decoder layer ``i`` when its name carries the layer index
the way both formats spell it (``blk.<i>.`` in GGUF, ``layers.<i>.`` in Hugging Face
names); every other tensor (embedding, LM head, final norm) is the head. Layers are
costed at their mean size, which is what the planner's per-layer figure means.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from reconciler.inference.config import ModelConfig
from reconciler.placement.inputs import ModelCost

_LAYER = re.compile(r"(?:^|\.)(?:blk|layers)\.(\d+)\.")
F32_BYTES = 4
Q80_BLOCK, Q80_BLOCK_BYTES = 32, 34  # 32 int8 values and a float16 scale


def layer_of(name: str) -> int | None:
    """The decoder layer a tensor name belongs to, or None for the head's tensors."""
    match = _LAYER.search(name)
    return int(match.group(1)) if match else None


def activation_bytes(dim: int, wire: str) -> int:
    """Bytes of one token's activation vector (``dim`` values) in a wire format."""
    if wire == "q80":
        return -(-dim // Q80_BLOCK) * Q80_BLOCK_BYTES
    return dim * F32_BYTES


def model_cost(
    config: ModelConfig, tensor_bytes: Mapping[str, int], positions: int, wire: str = "f32"
) -> ModelCost:
    """The cost of decoding ``config``'s model whose tensors take ``tensor_bytes``, with a
    KV cache of ``positions`` tokens (float32 keys and values) and activations on the
    wire in ``wire`` format ("f32" or "q80")."""
    layers = sum(n for name, n in tensor_bytes.items() if _in_model(layer_of(name), config))
    head = sum(n for name, n in tensor_bytes.items() if layer_of(name) is None)
    kv = 2 * config.n_kv_heads * config.head_dim * max(positions, 1) * F32_BYTES
    return ModelCost(
        n_layers=config.n_layers,
        layer_bytes=-(-layers // max(config.n_layers, 1)),
        head_bytes=head,
        kv_bytes_per_layer=kv,
        activation_bytes=activation_bytes(config.dim, wire),
    )


def _in_model(layer: int | None, config: ModelConfig) -> bool:
    return layer is not None and 0 <= layer < config.n_layers
