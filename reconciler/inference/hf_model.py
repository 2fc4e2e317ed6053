"""Hugging Face model directories: ``config.json``, ``*.safetensors`` (sharded or not).

Tensors are read with ``safetensors.safe_open(...).get_slice`` so only the requested rows
or columns leave the file. bfloat16 has no numpy dtype: those tensors are read through a
memory map of the file (offsets from the safetensors header) and widened to float32.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import numpy as np
from safetensors import safe_open

from reconciler.inference.config import ModelConfig, RopeScaling
from reconciler.inference.errors import ModelError
from reconciler.inference.filecheck import check_safetensors_header, check_weight_map
from reconciler.inference.weights import F32

_LAYER_NAMES = {
    "q": "self_attn.q_proj.weight",
    "k": "self_attn.k_proj.weight",
    "v": "self_attn.v_proj.weight",
    "o": "self_attn.o_proj.weight",
    "gate": "mlp.gate_proj.weight",
    "up": "mlp.up_proj.weight",
    "down": "mlp.down_proj.weight",
    "attn_norm": "input_layernorm.weight",
    "ffn_norm": "post_attention_layernorm.weight",
    "q_bias": "self_attn.q_proj.bias",
    "k_bias": "self_attn.k_proj.bias",
    "v_bias": "self_attn.v_proj.bias",
}
# Gemma 3 (model_type gemma3_text): norms before and after each block, QK-norm.
_GEMMA_NAMES = _LAYER_NAMES | {
    "ffn_norm": "pre_feedforward_layernorm.weight",
    "post_attn_norm": "post_attention_layernorm.weight",
    "post_ffn_norm": "post_feedforward_layernorm.weight",
    "q_norm": "self_attn.q_norm.weight",
    "k_norm": "self_attn.k_norm.weight",
}
_GLOBAL_NAMES = {
    "embed": "model.embed_tokens.weight",
    "lm_head": "lm_head.weight",
    "norm": "model.norm.weight",
}


def read_json(path: Path) -> Any:
    """A JSON file, or ModelError."""
    if not path.is_file():
        raise ModelError(path, "file is missing")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(path, f"not valid JSON ({exc})") from exc


def hf_config(directory: Path) -> ModelConfig:
    """ModelConfig from ``config.json`` (transformers 4.x or 5.x spelling)."""
    path = directory / "config.json"
    c = read_json(path)
    if c.get("model_type") == "gemma3_text":
        return _gemma3_config(path, c)
    if c.get("model_type") == "gemma3":
        raise ModelError(
            path, "a Gemma 3 vision-language folder: use a text-only one (model_type gemma3_text)"
        )
    return _plain_config(path, c)


def _plain_config(path: Path, c: dict[str, Any]) -> ModelConfig:
    arch = str(c.get("model_type", ""))
    rope = c.get("rope_parameters") or c.get("rope_scaling") or {}
    theta = c.get("rope_theta", rope.get("rope_theta", 10000.0))
    eos = c.get("eos_token_id")
    eos_ids = tuple(eos) if isinstance(eos, list) else (() if eos is None else (eos,))
    try:
        dim, n_heads = int(c["hidden_size"]), int(c["num_attention_heads"])
        config = ModelConfig(
            arch=arch,
            vocab=int(c["vocab_size"]),
            dim=dim,
            n_layers=int(c["num_hidden_layers"]),
            n_heads=n_heads,
            n_kv_heads=int(c.get("num_key_value_heads") or n_heads),
            head_dim=int(c.get("head_dim") or dim // n_heads),
            hidden_dim=int(c["intermediate_size"]),
            norm_eps=float(c.get("rms_norm_eps", 1e-6)),
            rope_theta=float(theta),
            max_seq=int(c.get("max_position_embeddings", 2048)),
            tie_embeddings=bool(c.get("tie_word_embeddings", False)),
            attention_bias=bool(c.get("attention_bias", arch == "qwen2")),
            rope_scaling=_rope_scaling(rope),
            bos_id=c.get("bos_token_id"),
            eos_ids=tuple(int(e) for e in eos_ids),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(path, f"bad or missing field ({exc!r})") from exc
    reason = config.validate()
    if reason:
        raise ModelError(path, reason)
    return config


def _gemma3_config(path: Path, c: dict[str, Any]) -> ModelConfig:
    """Gemma 3 text models, transformers 4.x (rope_theta, rope_local_base_freq, rope_scaling)
    or 5.x (rope_parameters per attention kind) spelling."""
    rope = _dict(c.get("rope_parameters"))
    full, local = _dict(rope.get("full_attention")), _dict(rope.get("sliding_attention"))
    theta = full.get("rope_theta", c.get("rope_theta", 1_000_000.0))
    theta_local = local.get("rope_theta", c.get("rope_local_base_freq", 10_000.0))
    if c.get("final_logit_softcapping") or c.get("attn_logit_softcapping"):
        raise ModelError(path, "logit soft-capping is not supported")
    c = {**c, "rope_parameters": full or c.get("rope_scaling") or {}, "rope_theta": theta}
    c = {**c, "model_type": "gemma3", "tie_word_embeddings": c.get("tie_word_embeddings", True)}
    base = _plain_config(path, c)
    scalar = c.get("query_pre_attn_scalar", 256)
    if not isinstance(scalar, int | float) or scalar <= 0:
        raise ModelError(path, f"query_pre_attn_scalar must be a positive number, not {scalar!r}")
    try:
        return replace(
            base,
            activation="gelu_tanh",
            qk_norm=True,
            post_norms=True,
            embed_scale=math.sqrt(base.dim),
            sliding_window=int(c.get("sliding_window") or 0),
            sliding_pattern=_pattern(path, c),
            rope_theta_local=float(theta_local),
            attn_scale=float(scalar) ** -0.5,
        )
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise ModelError(path, f"bad or missing field ({exc!r})") from exc


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _pattern(path: Path, c: dict[str, Any]) -> int:
    """Every n-th layer global: from layer_types (5.x) or sliding_window_pattern (4.x)."""
    kinds = c.get("layer_types")
    if not kinds:
        return int(c.get("sliding_window_pattern", 6))
    n = kinds.index("full_attention") + 1 if "full_attention" in kinds else 0
    want = [
        "full_attention" if n and (i + 1) % n == 0 else "sliding_attention"
        for i in range(len(kinds))
    ]
    if kinds != want:
        raise ModelError(path, "layer_types without a regular sliding/full pattern")
    return n


def _rope_scaling(rope: dict[str, Any]) -> RopeScaling | None:
    kind = rope.get("rope_type", rope.get("type"))
    if kind in (None, "default") or "factor" not in rope:
        return None
    return RopeScaling(
        kind=str(kind),
        factor=float(rope["factor"]),
        low_freq_factor=float(rope.get("low_freq_factor", 1.0)),
        high_freq_factor=float(rope.get("high_freq_factor", 4.0)),
        original_max_seq=int(rope.get("original_max_position_embeddings", 8192)),
    )


def weight_files(directory: Path) -> dict[str, Path]:
    """Tensor name -> safetensors file, from the index or by listing every file."""
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        return check_weight_map(directory, read_json(index).get("weight_map"))
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise ModelError(directory, "no *.safetensors files")
    out: dict[str, Path] = {}
    for f in files:
        out.update(dict.fromkeys(_header(f), f))
    return out


def _header(path: Path) -> dict[str, Any]:
    """The safetensors JSON header (name -> dtype, shape, data_offsets), or ModelError."""
    try:
        with path.open("rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            check_safetensors_header(path, n)
            header: dict[str, Any] = json.loads(fh.read(n))
    except (OSError, ValueError, struct.error) as exc:
        raise ModelError(path, f"not a safetensors file ({exc})") from exc
    check_safetensors_header(path, n, header)
    header.pop("__metadata__", None)
    size = path.stat().st_size
    for name, info in header.items():
        if 8 + n + info["data_offsets"][1] > size:
            raise ModelError(path, f"truncated: tensor {name} ends past the end of the file")
    header["__start__"] = 8 + n
    return header


class HFSource:
    """TensorSource over a safetensors directory (see ``weights.TensorSource``)."""

    def __init__(self, directory: Path, config: ModelConfig | None = None) -> None:
        self._files = weight_files(directory)
        self._dir = directory
        self._gemma = config is not None and config.arch == "gemma3"
        self._layer_names = _GEMMA_NAMES if self._gemma else _LAYER_NAMES

    def _name(self, name: str) -> str:
        layer, _, logical = name.rpartition(".")
        return (
            f"model.layers.{layer}.{self._layer_names[logical]}" if layer else _GLOBAL_NAMES[name]
        )

    def has(self, name: str) -> bool:
        return self._name(name) in self._files

    def _slice(self, name: str, index: tuple[slice, ...]) -> F32:
        full = self._name(name)
        path = self._files.get(full)
        if path is None:
            raise ModelError(self._dir, f"tensor {full} is missing")
        with safe_open(str(path), framework="numpy") as f:
            sl = f.get_slice(full)
            if sl.get_dtype() != "BF16":
                return np.asarray(sl[index], dtype=np.float32)
        return cast(F32, _bf16(path, full)[index])

    def rows(self, name: str, start: int, end: int) -> F32:
        return self._slice(name, (slice(start, end),))

    def cols(self, name: str, start: int, end: int) -> F32:
        return self._slice(name, (slice(None), slice(start, end)))

    def vector(self, name: str, start: int = 0, end: int | None = None) -> F32:
        out = self._slice(name, (slice(start, end),))
        if self._gemma and name.endswith("norm"):  # Gemma's RMSNorm multiplies by 1 + w
            return out + 1.0
        return out


def _bf16(path: Path, name: str) -> Any:
    """A lazy float32 view-maker over a bfloat16 tensor (memory-mapped, sliced before widening)."""
    header = _header(path)
    info = header[name]
    begin, end = info["data_offsets"]
    raw = np.memmap(
        path,
        dtype=np.uint16,
        mode="r",
        offset=header["__start__"] + begin,
        shape=((end - begin) // 2,),
    ).reshape(info["shape"])
    return _Widen(raw)


class _Widen:
    """Index a uint16 bfloat16 array, returning float32."""

    def __init__(self, raw: np.ndarray[Any, Any]) -> None:
        self._raw = raw

    def __getitem__(self, index: tuple[slice, ...]) -> F32:
        part = np.asarray(self._raw[index], dtype=np.uint32) << 16
        return cast(F32, part.view(np.float32))
