"""GGUF model files: hyper-parameters, metadata and tensors dequantized slice by slice.

GGUF stores a matrix row-major as ``[out, in]`` with quantization blocks along ``in``.
A slice over output rows (Q, K, V, gate, up, vocabulary) dequantizes only those rows; a
slice over input columns (O, down) dequantizes only the blocks covering the columns and
cuts, so a rank's peak memory stays near its share.

``convert_hf_to_gguf`` permutes the Q and K rows of llama/mistral into the interleaved-pair
RoPE layout. We undo that permutation per head while loading, so the forward pass uses
one RoPE (Hugging Face's half-split ``rotate_half``) for every format; qwen2 files are
not permuted.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import gguf
import numpy as np
from numpy.typing import NDArray

from reconciler.inference.config import ModelConfig, RopeScaling
from reconciler.inference.errors import ModelError
from reconciler.inference.filecheck import check_gguf
from reconciler.inference.weights import F32

_LAYER_NAMES = {
    "q": "attn_q.weight",
    "k": "attn_k.weight",
    "v": "attn_v.weight",
    "o": "attn_output.weight",
    "gate": "ffn_gate.weight",
    "up": "ffn_up.weight",
    "down": "ffn_down.weight",
    "attn_norm": "attn_norm.weight",
    "ffn_norm": "ffn_norm.weight",
    "q_bias": "attn_q.bias",
    "k_bias": "attn_k.bias",
    "v_bias": "attn_v.bias",
    "q_norm": "attn_q_norm.weight",
    "k_norm": "attn_k_norm.weight",
    "post_attn_norm": "post_attention_norm.weight",
    "post_ffn_norm": "post_ffw_norm.weight",
}
_GLOBAL_NAMES = {
    "embed": "token_embd.weight",
    "lm_head": "output.weight",
    "norm": "output_norm.weight",
}
_PERMUTED_ARCHS = ("llama", "mistral")
_ARCHS = ("llama", "mistral", "qwen2", "gemma3")
# Gemma 3 settings llama.cpp fixes in code when the file does not carry them.
_GEMMA3_SLIDING_PATTERN = 6  # every 6th layer attends globally
_GEMMA3_ROPE_LOCAL = 10000.0  # RoPE base of the sliding layers


class _FastReader(gguf.GGUFReader):
    """``gguf.GGUFReader`` with its per-element overhead removed (same fields and tensors).

    The stock reader slices a ``np.memmap`` (a Python-level subclass) twice per array
    element: a 262k-token vocabulary took 40-60 s to open on this machine. Here the
    mapping is viewed as a plain ndarray (still memory-mapped) and arrays of scalars or
    strings are walked in one loop; files of the other byte order use the stock code.
    """

    @property  # type: ignore[override]
    def data(self) -> NDArray[np.uint8]:
        return self._plain

    @data.setter
    def data(self, value: NDArray[np.uint8]) -> None:
        self._plain = value.view(np.ndarray)

    def _get(
        self, offset: int, dtype: Any, count: int = 1, override_order: Any = None
    ) -> NDArray[Any]:
        if override_order is not None or self.byte_order != "I":
            return super()._get(offset, dtype, count, override_order)
        dt = np.dtype(dtype)
        return self._plain[offset : offset + dt.itemsize * int(count)].view(dt)

    def _get_field_parts(
        self, orig_offs: int, raw_type: int
    ) -> tuple[int, list[NDArray[Any]], list[int], list[gguf.GGUFValueType]]:
        if raw_type != gguf.GGUFValueType.ARRAY or self.byte_order != "I":
            return super()._get_field_parts(orig_offs, raw_type)
        itype = self._get(orig_offs, np.uint32)
        alen = self._get(orig_offs + 4, np.uint64)
        item = gguf.GGUFValueType(int(itype[0]))
        scalar = self.gguf_scalar_to_np.get(item)
        parts: list[NDArray[Any]] = [itype, alen]
        offs, count = orig_offs + 12, int(alen[0])
        if scalar is not None:  # one view, then a 1-element view per item as the stock reader
            size = np.dtype(scalar).itemsize
            whole = self._get(offs, scalar, count)
            parts += [whole[i : i + 1] for i in range(count)]
            types = [gguf.GGUFValueType.ARRAY] + ([item] if count else [])
            return 12 + size * count, parts, list(range(2, 2 + count)), types
        if item != gguf.GGUFValueType.STRING:
            return super()._get_field_parts(orig_offs, raw_type)
        idxs: list[int] = []
        data, u64 = self._plain, np.dtype(np.uint64)
        for _ in range(count):
            length = data[offs : offs + 8].view(u64)
            n = int(length[0])
            parts += (length, data[offs + 8 : offs + 8 + n])
            idxs.append(len(parts) - 1)
            offs += 8 + n
        types = [gguf.GGUFValueType.ARRAY] + ([gguf.GGUFValueType.STRING] if idxs else [])
        return offs - orig_offs, parts, idxs, types


def open_gguf(path: str | Path) -> gguf.GGUFReader:
    """A reader over a GGUF file, or ModelError naming the file and the reason."""
    p = Path(path)
    if not p.is_file():
        raise ModelError(p, "no such model file")
    check_gguf(p)  # bounded sizes before the reader allocates per element
    try:
        reader = _FastReader(p)
    except Exception as exc:  # gguf raises ValueError, IndexError, struct errors ...
        raise ModelError(p, f"not a readable GGUF file ({type(exc).__name__}: {exc})") from exc
    size = p.stat().st_size
    for t in reader.tensors:
        if t.data_offset + t.n_bytes > size:
            raise ModelError(p, f"truncated: tensor {t.name} ends past the end of the file")
    return reader


def field(reader: gguf.GGUFReader, key: str, default: Any = None) -> Any:
    """A metadata value (scalar, string or list), or ``default`` when absent."""
    f = reader.fields.get(key)
    return default if f is None else f.contents()


def gguf_config(reader: gguf.GGUFReader, path: str | Path) -> ModelConfig:
    """ModelConfig from a GGUF file's metadata."""
    arch = str(field(reader, "general.architecture", ""))
    names = {t.name for t in reader.tensors}

    def need(key: str) -> Any:
        value = field(reader, f"{arch}.{key}")
        if value is None:
            raise ModelError(path, f"metadata {arch}.{key} is missing")
        return value

    if arch not in _ARCHS:
        raise ModelError(
            path, f"unsupported architecture {arch!r} (supported: {', '.join(_ARCHS)})"
        )
    dim, n_heads = int(need("embedding_length")), int(need("attention.head_count"))
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    vocab = field(reader, f"{arch}.vocab_size") or (len(tokens.data) if tokens else 0)
    eos = field(reader, "tokenizer.ggml.eos_token_id")
    eot = field(reader, "tokenizer.ggml.eot_token_id")
    config = ModelConfig(
        arch=arch,
        vocab=int(vocab),
        dim=dim,
        n_layers=int(need("block_count")),
        n_heads=n_heads,
        n_kv_heads=int(field(reader, f"{arch}.attention.head_count_kv", n_heads)),
        head_dim=int(field(reader, f"{arch}.attention.key_length", dim // n_heads)),
        hidden_dim=int(need("feed_forward_length")),
        norm_eps=float(need("attention.layer_norm_rms_epsilon")),
        rope_theta=float(field(reader, f"{arch}.rope.freq_base", 10000.0)),
        max_seq=int(field(reader, f"{arch}.context_length", 2048)),
        tie_embeddings="output.weight" not in names,
        attention_bias="blk.0.attn_q.bias" in names,
        rope_scaling=_rope_scaling(reader, arch),
        bos_id=field(reader, "tokenizer.ggml.bos_token_id"),
        eos_ids=tuple(int(t) for t in dict.fromkeys((eos, eot)) if t is not None),
    )
    if arch == "gemma3":
        try:
            config = _gemma3(reader, config)
        except (TypeError, ValueError) as exc:
            raise ModelError(path, f"bad gemma3 metadata ({exc})") from exc
    reason = config.validate()
    if reason:
        raise ModelError(path, reason)
    return config


def _gemma3(reader: gguf.GGUFReader, config: ModelConfig) -> ModelConfig:
    """Gemma 3's switches. Its converter already added 1 to every norm weight (Gemma's
    RMSNorm multiplies by 1 + w), so the norms load as they are."""
    tokens = field(reader, "tokenizer.ggml.tokens") or []
    eos = list(config.eos_ids)
    if "<end_of_turn>" in tokens:  # the chat turn's end, which llama.cpp also stops at
        eos.append(tokens.index("<end_of_turn>"))
    return replace(
        config,
        activation="gelu_tanh",
        qk_norm=True,
        post_norms=True,
        embed_scale=math.sqrt(config.dim),
        sliding_window=int(field(reader, "gemma3.attention.sliding_window", 0)),
        sliding_pattern=_int(
            field(reader, "gemma3.attention.sliding_window_pattern"), _GEMMA3_SLIDING_PATTERN
        ),
        rope_theta_local=float(field(reader, "gemma3.rope.freq_base_swa", _GEMMA3_ROPE_LOCAL)),
        eos_ids=tuple(dict.fromkeys(eos)),
    )


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _rope_scaling(reader: gguf.GGUFReader, arch: str) -> RopeScaling | None:
    kind = field(reader, f"{arch}.rope.scaling.type")
    factor = field(reader, f"{arch}.rope.scaling.factor")
    if kind in (None, "none") or not factor:
        return None
    return RopeScaling(kind=str(kind), factor=float(factor))


class GGUFSource:
    """TensorSource over a GGUF file (see ``weights.TensorSource``)."""

    def __init__(self, reader: gguf.GGUFReader, config: ModelConfig, path: str | Path) -> None:
        self._tensors = {t.name: t for t in reader.tensors}
        self._config = config
        self._path = path

    def _tensor(self, name: str) -> Any:
        layer, _, logical = name.rpartition(".")
        file_name = f"blk.{layer}.{_LAYER_NAMES[logical]}" if layer else _GLOBAL_NAMES[name]
        t = self._tensors.get(file_name)
        if t is None:
            raise ModelError(self._path, f"tensor {file_name} is missing")
        return t

    def has(self, name: str) -> bool:
        try:
            self._tensor(name)
        except ModelError:
            return False
        return True

    def rows(self, name: str, start: int, end: int) -> F32:
        t = self._tensor(name)
        if end <= start:
            return np.zeros((0, int(t.shape[0])), dtype=np.float32)
        out = _dequantize(t.data[start:end], t.tensor_type)
        logical = name.rpartition(".")[2]
        if logical in ("q", "k") and self._config.arch in _PERMUTED_ARCHS:
            out = _unpermute(out, self._config.head_dim)
        return out

    def cols(self, name: str, start: int, end: int) -> F32:
        t = self._tensor(name)
        if end <= start:
            return np.zeros((int(t.shape[1]), 0), dtype=np.float32)
        data = t.data
        if data.dtype != np.uint8:  # F32 / F16 arrays are indexed by element
            return _dequantize(data[:, start:end], t.tensor_type)
        block, type_size = gguf.GGML_QUANT_SIZES[t.tensor_type]
        b0, b1 = start // block, -(-end // block)
        out = _dequantize(data[:, b0 * type_size : b1 * type_size], t.tensor_type)
        return out[:, start - b0 * block : end - b0 * block]

    def vector(self, name: str, start: int = 0, end: int | None = None) -> F32:
        t = self._tensor(name)
        return _dequantize(t.data, t.tensor_type).reshape(-1)[start:end]


def _dequantize(data: NDArray[Any], qtype: gguf.GGMLQuantizationType) -> F32:
    if data.dtype == np.float32:
        return np.array(data, dtype=np.float32)
    out: F32 = gguf.quants.dequantize(np.ascontiguousarray(data), qtype)
    return out.astype(np.float32, copy=False)


def _unpermute(w: F32, head_dim: int) -> F32:
    """Undo convert_hf_to_gguf's interleaved-pair permutation of whole heads' rows."""
    n = w.shape[0] // head_dim
    return w.reshape(n, head_dim // 2, 2, -1).swapaxes(1, 2).reshape(w.shape)
