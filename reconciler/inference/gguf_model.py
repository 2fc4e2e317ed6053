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

import contextlib
import math
import mmap
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

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


class _Reader(gguf.GGUFReader):
    """``gguf.GGUFReader`` slicing a plain ndarray view of its memory map.

    The stock reader slices the ``np.memmap`` itself, and each slice pays memmap's
    ``__array_finalize__``: parsing a 49k-token vocabulary took seconds. The views are
    the same bytes of the same map."""

    def _get(self, offset: int, dtype: Any, count: int = 1, override_order: Any = None) -> Any:
        plain = self.__dict__.get("_plain")
        if plain is None:
            plain = self.__dict__["_plain"] = self.data.view(np.ndarray)
        dt = _DTYPES.get(dtype) or np.dtype(dtype)
        count = int(count)
        arr = plain[offset : offset + dt.itemsize * count].view(dt)
        order = self.byte_order if override_order is None else override_order
        return arr if order == "I" else arr.view(dt.newbyteorder(order))

    def _get_field_parts(self, orig_offs: int, raw_type: int) -> Any:
        """Arrays of strings or scalars in bulk (the same parts as the stock reader)."""
        if (
            raw_type != gguf.GGUFValueType.ARRAY
            or self.byte_order != "I"
            or sys.byteorder != "little"
        ):
            return super()._get_field_parts(orig_offs, raw_type)
        raw_itype = self._get(orig_offs, np.uint32)
        alen = self._get(orig_offs + 4, np.uint64)
        itype = gguf.GGUFValueType(int(raw_itype[0]))
        n = int(alen[0])
        nptype = self.gguf_scalar_to_np.get(itype)
        if n == 0 or (itype != gguf.GGUFValueType.STRING and nptype is None):
            return super()._get_field_parts(orig_offs, raw_type)
        plain = self.__dict__["_plain"]
        offs = orig_offs + 12
        parts: list[Any] = [raw_itype, alen]
        if nptype is not None:
            dt = np.dtype(nptype)
            parts += list(plain[offs : offs + dt.itemsize * n].view(dt).reshape(n, 1))
            return (
                12 + dt.itemsize * n,
                parts,
                list(range(2, 2 + n)),
                [gguf.GGUFValueType.ARRAY, itype],
            )
        mv = memoryview(plain)
        u64 = _DTYPES[np.uint64]
        idxs = []
        for _ in range(n):
            slen = int.from_bytes(mv[offs : offs + 8], "little")
            parts.append(plain[offs : offs + 8].view(u64))
            parts.append(plain[offs + 8 : offs + 8 + slen])
            idxs.append(len(parts) - 1)
            offs += 8 + slen
        return offs - orig_offs, parts, idxs, [gguf.GGUFValueType.ARRAY, itype]


_SCALARS = (np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, np.float32, np.uint64)
_DTYPES: dict[Any, np.dtype[Any]] = {t: np.dtype(t) for t in (*_SCALARS, np.int64, np.float64)}
_OPEN: dict[tuple[str, int, int], gguf.GGUFReader] = {}


def open_gguf(path: str | Path, tensors_only: bool = False) -> gguf.GGUFReader:
    """A reader over a GGUF file, or ModelError naming the file and the reason.

    The last file opened is kept (a command reads its metadata, then its tensors); a
    kept reader whose vocabulary arrays were dropped (``drop_vocabulary``) serves only
    ``tensors_only`` callers."""
    p = Path(path)
    if not p.is_file():
        raise ModelError(p, "no such model file")
    check_gguf(p)  # bounded sizes before the reader allocates per element
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    kept = _OPEN.get(key)
    if kept is not None and (tensors_only or not getattr(kept, "vocabulary_dropped", False)):
        return kept
    try:
        reader = _Reader(p)
    except Exception as exc:  # gguf raises ValueError, IndexError, struct errors ...
        raise ModelError(p, f"not a readable GGUF file ({type(exc).__name__}: {exc})") from exc
    size = p.stat().st_size
    for t in reader.tensors:
        if t.data_offset + t.n_bytes > size:
            raise ModelError(p, f"truncated: tensor {t.name} ends past the end of the file")
    _OPEN.clear()
    _OPEN[key] = reader
    return reader


def drop_vocabulary(reader: gguf.GGUFReader) -> None:
    """Free the parsed vocabulary and merges (about 24 MB for a 49k vocabulary) once the
    tokenizer is built; the tensors stay readable."""
    for f in reader.fields.values():
        if len(f.parts) > 4096:
            f.parts.clear()
            f.data.clear()
    reader.vocabulary_dropped = True  # type: ignore[attr-defined]


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
        self._reader = reader
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
        except (ModelError, KeyError):  # KeyError: a logical name this format lacks
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

    # -- quantized access (the kernels keep blocks as stored) --------------------------

    def qtype(self, name: str) -> gguf.GGMLQuantizationType:
        """The tensor's storage type."""
        return gguf.GGMLQuantizationType(self._tensor(name).tensor_type)

    def raw_rows(self, name: str, start: int, end: int) -> NDArray[Any]:
        """Output rows ``[start, end)`` as stored (block bytes, or float values); a view
        of the memory map unless rows had to be reordered."""
        t = self._tensor(name)
        out = t.data[start:end]
        logical = name.rpartition(".")[2]
        if logical in ("q", "k") and self._config.arch in _PERMUTED_ARCHS and end > start:
            out = _unpermute(out, self._config.head_dim)
        return cast(NDArray[Any], out)

    def raw_cols(self, name: str, start: int, end: int) -> tuple[NDArray[Any], int, int]:
        """The whole blocks covering input columns ``[start, end)`` of every row, as
        stored, with the number of extra columns they hold before and after the range."""
        t = self._tensor(name)
        data = t.data
        width = int(t.shape[0])
        if data.dtype != np.uint8:
            return data[:, start:end], 0, 0
        block, type_size = gguf.GGML_QUANT_SIZES[t.tensor_type]
        b0, b1 = start // block, -(-end // block)
        return (
            data[:, b0 * type_size : b1 * type_size],
            start - b0 * block,
            min(b1 * block, width) - end,
        )

    def release(self) -> None:
        """Drop the memory map's resident pages (they are re-read from the page cache
        if touched again): loading reads each page once, this keeps RSS near the share."""
        release_pages(self._reader)


def release_pages(reader: gguf.GGUFReader) -> None:
    """madvise(DONTNEED) the reader's memory map, where the platform has it."""
    mm = getattr(reader.data, "_mmap", None)
    advice = getattr(mmap, "MADV_DONTNEED", None)
    if mm is not None and advice is not None:
        with contextlib.suppress(OSError, ValueError):
            mm.madvise(advice)


def _dequantize(data: NDArray[Any], qtype: gguf.GGMLQuantizationType) -> F32:
    if data.dtype == np.float32:
        return np.array(data, dtype=np.float32)
    out: F32 = gguf.quants.dequantize(np.ascontiguousarray(data), qtype)
    return out.astype(np.float32, copy=False)


def _unpermute(w: NDArray[Any], head_dim: int) -> NDArray[Any]:
    """Undo convert_hf_to_gguf's interleaved-pair permutation of whole heads' rows."""
    n = w.shape[0] // head_dim
    return w.reshape(n, head_dim // 2, 2, -1).swapaxes(1, 2).reshape(w.shape)
