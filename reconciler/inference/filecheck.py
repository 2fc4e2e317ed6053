"""Checks on model files before they are parsed: a hostile file is a clear ModelError.

A model file can come from anywhere, and the libraries that read it trust what it
declares. ``gguf.GGUFReader`` builds several numpy views for every array element, so a
2 MB file of empty strings costs seconds and hundreds of MB; a safetensors header may
claim any length; an index may name files outside the model directory; tensors may not
have the shapes the configuration implies, and the forward pass would index past them.

- ``check_gguf``: walks the GGUF header with bounded reads (no allocation per element)
  and refuses more than ``MAX_TENSORS`` tensors or ``MAX_KV`` metadata entries,
  nested arrays, strings over ``MAX_STRING``, arrays over ``MAX_ARRAY``, more array
  elements in all than ``element_budget(file size)``, declared sizes past the end of
  the file, and tensor infos with unknown types, 0 or more than 4 dimensions, or more
  than ``MAX_TENSOR_ELEMENTS`` elements.
- ``check_safetensors_header``: a header length within ``MAX_SAFETENSORS_HEADER`` and
  the file, and entries whose offsets match their dtype and shape.
- ``check_weight_map``: every file of ``model.safetensors.index.json`` is a plain file
  name inside the model directory.
- ``check_shapes``: tensors named like the architecture's have the configuration's
  shapes (``[out, in]``; the embedding has at least ``vocab`` rows).
"""

from __future__ import annotations

import functools
import json
import math
import mmap
import struct
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import gguf

from reconciler.inference.config import ModelConfig
from reconciler.inference.errors import ModelError

MAX_TENSORS = 65_536
MAX_KV = 65_536
MAX_KEY = 65_535
MAX_STRING = 16 << 20  # chat templates are tens of KB
MAX_ARRAY = 1 << 20  # Gemma 3's vocabulary is 262,144 tokens
MAX_ELEMENTS = 1 << 22  # array elements in all (tokens, scores, types, merges)
ELEMENTS_FLOOR = 1 << 16  # what any file may hold, however small
BYTES_PER_ELEMENT = 64  # beyond the floor, one element per 64 bytes of file
MAX_DIMS = 4
MAX_TENSOR_ELEMENTS = 1 << 40
MAX_SAFETENSORS_HEADER = 100_000_000  # the safetensors library's own limit

_SCALAR = {
    gguf.GGUFValueType.UINT8: 1, gguf.GGUFValueType.INT8: 1, gguf.GGUFValueType.BOOL: 1,
    gguf.GGUFValueType.UINT16: 2, gguf.GGUFValueType.INT16: 2,
    gguf.GGUFValueType.UINT32: 4, gguf.GGUFValueType.INT32: 4, gguf.GGUFValueType.FLOAT32: 4,
    gguf.GGUFValueType.UINT64: 8, gguf.GGUFValueType.INT64: 8, gguf.GGUFValueType.FLOAT64: 8,
}  # fmt: skip
_DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2,
    "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip


def element_budget(file_size: int) -> int:
    """How many array elements a GGUF file of this size may declare in all."""
    return min(MAX_ELEMENTS, ELEMENTS_FLOOR + file_size // BYTES_PER_ELEMENT)


_U32, _U64 = struct.Struct("<I"), struct.Struct("<Q")


class _Bounded:
    """Reads of a memory-mapped file that may not go past its end."""

    def __init__(self, buf: mmap.mmap, path: Path) -> None:
        self.buf, self.size, self.path, self.pos = buf, len(buf), path, 0

    def fail(self, reason: str) -> ModelError:
        return ModelError(self.path, f"refused GGUF file: {reason}")

    def skip(self, n: int) -> None:
        if n < 0 or self.pos + n > self.size:
            raise self.fail("a declared size runs past the end of the file")
        self.pos += n

    def u32(self) -> int:
        self.skip(4)
        return int(_U32.unpack_from(self.buf, self.pos - 4)[0])

    def u64(self) -> int:
        self.skip(8)
        return int(_U64.unpack_from(self.buf, self.pos - 8)[0])

    def string(self, limit: int = MAX_STRING) -> int:
        """Skip a string; its length."""
        length = self.u64()
        if length > limit:
            raise self.fail(f"a string of {length} bytes (at most {limit})")
        self.skip(length)
        return length

    def strings(self, count: int) -> None:
        """Skip ``count`` strings (the tight loop of a vocabulary)."""
        buf, pos, end, unpack = self.buf, self.pos, self.size - 8, _U64.unpack_from
        for _ in range(count):
            if pos > end:
                raise self.fail("a declared size runs past the end of the file")
            (length,) = unpack(buf, pos)
            if length > MAX_STRING:
                raise self.fail(f"a string of {length} bytes (at most {MAX_STRING})")
            pos += 8 + length
        self.pos = pos
        self.skip(0)


def check_gguf(path: Path) -> None:
    """ModelError if the GGUF file declares more than can be parsed safely (each
    version of a file is checked once per process)."""
    info = path.stat()
    _check_gguf(path.resolve(), info.st_size, info.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _check_gguf(path: Path, size: int, mtime_ns: int) -> None:
    if size < 24:
        return  # too short for a header: the reader says so in its own words
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        r = _Bounded(buf, path)
        if buf[:4] != b"GGUF":
            return
        r.skip(4)
        version = r.u32()
        if version not in (2, 3):
            raise r.fail(f"GGUF version {version} (this reader knows 2 and 3)")
        n_tensors, n_kv = r.u64(), r.u64()
        if n_tensors > MAX_TENSORS or n_kv > MAX_KV:
            raise r.fail(f"{n_tensors} tensors and {n_kv} metadata entries "
                         f"(at most {MAX_TENSORS} and {MAX_KV})")  # fmt: skip
        budget = element_budget(size)
        for _ in range(n_kv):
            r.string(MAX_KEY)
            budget = _check_value(r, r.u32(), budget)
        for _ in range(n_tensors):
            _check_tensor_info(r)


def _check_value(r: _Bounded, kind: int, budget: int) -> int:
    """Skip one metadata value; the element budget left."""
    if kind in _SCALAR:
        r.skip(_SCALAR[gguf.GGUFValueType(kind)])
    elif kind == gguf.GGUFValueType.STRING:
        r.string()
    elif kind == gguf.GGUFValueType.ARRAY:
        item, count = r.u32(), r.u64()
        if item == gguf.GGUFValueType.ARRAY:
            raise r.fail("nested arrays")
        if count > MAX_ARRAY or count > budget:
            raise r.fail(f"an array of {count} elements (at most {min(MAX_ARRAY, budget)} "
                         f"more in a file of {r.size} bytes)")  # fmt: skip
        budget -= count
        if item == gguf.GGUFValueType.STRING:
            r.strings(count)
        elif item in _SCALAR:
            r.skip(count * _SCALAR[gguf.GGUFValueType(item)])
        else:
            raise r.fail(f"unknown array element type {item}")
    else:
        raise r.fail(f"unknown metadata value type {kind}")
    return budget


def _check_tensor_info(r: _Bounded) -> None:
    r.string(MAX_KEY)
    n_dims = r.u32()
    if not 1 <= n_dims <= MAX_DIMS:
        raise r.fail(f"a tensor with {n_dims} dimensions (1 to {MAX_DIMS})")
    dims = [r.u64() for _ in range(n_dims)]
    if min(dims) < 1 or math.prod(dims) > MAX_TENSOR_ELEMENTS:
        raise r.fail(f"a tensor of shape {dims}")
    kind = r.u32()
    try:
        gguf.GGMLQuantizationType(kind)
    except ValueError as exc:
        raise r.fail(f"unknown tensor type {kind}") from exc
    r.u64()  # data offset: checked against the file size once the reader has it


def check_safetensors_header(path: Path, length: int, header: Any = None) -> None:
    """ModelError if a safetensors header length (and, when given, its entries) are
    not plausible for this file."""
    size = path.stat().st_size
    if length > MAX_SAFETENSORS_HEADER or 8 + length > size:
        raise ModelError(path, f"refused safetensors file: a header of {length} bytes "
                               f"in a file of {size}")  # fmt: skip
    if header is None:
        return
    if not isinstance(header, dict):
        raise ModelError(path, "refused safetensors file: the header is not an object")
    for name, info in header.items():
        if name != "__metadata__":
            _check_entry(path, str(name), info, size - 8 - length)


def _check_entry(path: Path, name: str, info: Any, data_size: int) -> None:
    try:
        dtype, shape = info["dtype"], [int(d) for d in info["shape"]]
        begin, end = (int(o) for o in info["data_offsets"])
        wanted = _DTYPE_BYTES[dtype] * math.prod(shape)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(path, f"refused safetensors file: tensor {name}: {exc!r}") from exc
    if min(shape, default=0) < 0 or not 0 <= begin <= end <= data_size or end - begin != wanted:
        raise ModelError(path, f"refused safetensors file: tensor {name} {dtype}{shape} does "
                               f"not fit its offsets [{begin}, {end}]")  # fmt: skip


def check_weight_map(directory: Path, weight_map: Any) -> dict[str, Path]:
    """The index's tensor -> file map, each file a plain name inside ``directory``."""
    if not isinstance(weight_map, dict):
        raise ModelError(directory, "model.safetensors.index.json: weight_map is not an object")
    root = directory.resolve()
    files: dict[str, Path] = {}
    for name, file in weight_map.items():
        target = (directory / str(file)).resolve()
        if (not isinstance(file, str) or Path(file).name != file or file in ("", ".", "..")
                or target.parent != root):  # fmt: skip
            raise ModelError(directory, f"weight_map names {file!r} for {name}: only files "
                                        "inside the model directory are read")  # fmt: skip
        files[str(name)] = directory / file
    return files


_LAYER = {
    "attn_q.weight": "self_attn.q_proj.weight", "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight", "attn_output.weight": "self_attn.o_proj.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight", "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight", "attn_norm.weight": "input_layernorm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight", "attn_q.bias": "self_attn.q_proj.bias",
    "attn_k.bias": "self_attn.k_proj.bias", "attn_v.bias": "self_attn.v_proj.bias",
}  # fmt: skip
_GLOBAL = {"token_embd.weight": "model.embed_tokens.weight", "output.weight": "lm_head.weight",
           "output_norm.weight": "model.norm.weight"}  # fmt: skip


def expected_shapes(config: ModelConfig) -> Iterator[tuple[str, str, tuple[int, ...]]]:
    """(GGUF name, Hugging Face name, [out, in] shape) of every known tensor."""
    d, e, f = config.dim, config.head_dim, config.hidden_dim
    q, kv = config.n_heads * e, config.n_kv_heads * e
    yield "output_norm.weight", "model.norm.weight", (d,)
    per_layer = {
        "attn_q.weight": (q, d), "attn_k.weight": (kv, d), "attn_v.weight": (kv, d),
        "attn_output.weight": (d, q), "ffn_gate.weight": (f, d), "ffn_up.weight": (f, d),
        "ffn_down.weight": (d, f), "attn_norm.weight": (d,), "ffn_norm.weight": (d,),
        "attn_q.bias": (q,), "attn_k.bias": (kv,), "attn_v.bias": (kv,),
    }  # fmt: skip
    for i in range(config.n_layers):
        for name, shape in per_layer.items():
            yield f"blk.{i}.{name}", f"model.layers.{i}.{_LAYER[name]}", shape


def check_shapes(config: ModelConfig, shapes: Mapping[str, tuple[int, ...]], where: Path) -> None:
    """ModelError if a tensor present under a known name (GGUF or Hugging Face) has
    another shape than the configuration implies. ``shapes`` are ``[out, in]``."""
    for gguf_name, hf_name, shape in expected_shapes(config):
        for name in (gguf_name, hf_name):
            if name in shapes and tuple(shapes[name]) != shape:
                raise ModelError(where, f"tensor {name} has shape {list(shapes[name])}, "
                                        f"the configuration implies {list(shape)}")  # fmt: skip
    for gguf_name, hf_name in _GLOBAL.items():
        if gguf_name == "output_norm.weight":
            continue
        for name in (gguf_name, hf_name):
            found = shapes.get(name)
            if found is not None and (len(found) != 2 or found[0] < config.vocab
                                      or found[1] != config.dim):  # fmt: skip
                raise ModelError(
                    where,
                    f"tensor {name} has shape {list(found)}, the "
                    f"configuration implies [{config.vocab}, {config.dim}]",
                )


def gguf_shapes(tensors: Any) -> dict[str, tuple[int, ...]]:
    """[out, in] shapes of a GGUFReader's tensors (GGUF lists dimensions innermost first)."""
    return {t.name: tuple(int(n) for n in reversed(list(t.shape))) for t in tensors}


def safetensors_shapes(files: Mapping[str, Path]) -> dict[str, tuple[int, ...]]:
    """Shapes of the tensors of safetensors files, from their (checked) headers."""
    shapes: dict[str, tuple[int, ...]] = {}
    for path in sorted(set(files.values())):
        with path.open("rb") as fh:
            (length,) = struct.unpack("<Q", fh.read(8))
            check_safetensors_header(path, length)
            header = json.loads(fh.read(length))
        header.pop("__metadata__", None)
        shapes.update({n: tuple(int(d) for d in info["shape"]) for n, info in header.items()})
    return shapes
