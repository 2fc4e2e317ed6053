"""Entry points for the Job controller: model info (no weights) and one rank's weights.

``path`` is either a ``.gguf`` file or a Hugging Face directory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from reconciler.inference.config import ModelConfig
from reconciler.inference.errors import ModelError
from reconciler.inference.filecheck import check_shapes, gguf_shapes, safetensors_shapes
from reconciler.inference.gguf_model import (
    GGUFSource,
    drop_vocabulary,
    field,
    gguf_config,
    open_gguf,
)
from reconciler.inference.hf_model import HFSource, hf_config, weight_files
from reconciler.inference.kernels import (
    ACTIVATIONS,
    default_activations,
    default_kernels,
    default_threads,
    resolve,
)
from reconciler.inference.kernels.blockshard import build_block_shard
from reconciler.inference.kernels.building import build_fused
from reconciler.inference.kernels.fused import FusedShard
from reconciler.inference.kernels.ggml import default_threads as ggml_threads
from reconciler.inference.sharding import RankShare
from reconciler.inference.tokenizer import Tokenizer, tokenizer_from_gguf, tokenizer_from_hf
from reconciler.inference.weights import ShardWeights, TensorSource, build_shard

_TOKENIZER_KEYS = (
    "general.architecture",
    "tokenizer.ggml.model",
    "tokenizer.ggml.pre",
    "tokenizer.ggml.tokens",
    "tokenizer.ggml.merges",
    "tokenizer.ggml.token_type",
    "tokenizer.ggml.scores",
    "tokenizer.ggml.unknown_token_id",
    "tokenizer.ggml.bos_token_id",
    "tokenizer.ggml.eos_token_id",
    "tokenizer.ggml.eot_token_id",
    "tokenizer.ggml.add_bos_token",
    "tokenizer.ggml.add_eos_token",
    "tokenizer.chat_template",
)
# GGUF tokenizers built in this process, by (path, size, mtime): a 262k-piece SentencePiece
# vocabulary takes seconds to turn into merges, and the agent loads a model per job.
_TOKENIZERS: dict[tuple[str, int, int], Tokenizer] = {}


@dataclass
class ModelInfo:
    """What a model is, without its weights."""

    path: Path
    format: str  # "gguf" | "hf"
    config: ModelConfig
    tokenizer: Tokenizer

    @property
    def chat_template(self) -> str | None:
        """The Jinja chat template, if the model has one."""
        return self.tokenizer.chat_template


def _format(path: Path) -> str:
    if path.is_dir():
        return "hf"
    if path.suffix.lower() == ".gguf" or path.is_file():
        return "gguf"
    raise ModelError(path, "no such model file or directory")


def load_config(path: str | Path) -> ModelConfig:
    """Only the hyper-parameters."""
    p = Path(path)
    if _format(p) == "hf":
        return hf_config(p)
    return gguf_config(open_gguf(p), p)


def load_model_info(path: str | Path) -> ModelInfo:
    """Config, tokenizer and chat template of a model (reads no weights)."""
    p = Path(path)
    if _format(p) == "hf":
        config = hf_config(p)
        return ModelInfo(p, "hf", config, tokenizer_from_hf(p, config.bos_id, config.eos_ids))
    reader = open_gguf(p)
    config = gguf_config(reader, p)
    stat = p.stat()
    key = (str(p.resolve()), stat.st_size, stat.st_mtime_ns)
    tokenizer = _TOKENIZERS.get(key)
    if tokenizer is None:
        tokenizer = tokenizer_from_gguf({k: field(reader, k) for k in _TOKENIZER_KEYS}, p)
        if len(_TOKENIZERS) >= 4:
            _TOKENIZERS.clear()
        _TOKENIZERS[key] = tokenizer
    drop_vocabulary(reader)  # the weights are read next: keep only what they need
    return ModelInfo(p, "gguf", config, tokenizer)


def open_source(path: str | Path, config: ModelConfig) -> TensorSource:
    """A TensorSource over the model's tensors."""
    p = Path(path)
    if _format(p) == "hf":
        check_shapes(config, safetensors_shapes(weight_files(p)), p)
        return HFSource(p, config)
    reader = open_gguf(p, tensors_only=True)
    check_shapes(config, gguf_shapes(reader.tensors), p)
    return GGUFSource(reader, config, p)


def load_shard(
    path: str | Path,
    config: ModelConfig,
    share: RankShare,
    progress: Callable[[float], None] | None = None,
    kernels: str | None = None,
    activations: str | None = None,
    threads: int | None = None,
) -> ShardWeights | FusedShard:
    """Read only this rank's share of the weights, ready for the chosen kernels
    (``auto``, ``numpy``, ``onnxruntime`` or ``ggml``; see ``reconciler.inference.kernels``;
    defaults from ``MESHNET_KERNELS`` / ``MESHNET_ACTIVATIONS`` / ``MESHNET_THREADS``)."""
    return build_weights(open_source(path, config), config, share, progress,
                         kernels, activations, threads)  # fmt: skip


def build_weights(
    source: TensorSource,
    config: ModelConfig,
    share: RankShare,
    progress: Callable[[float], None] | None = None,
    kernels: str | None = None,
    activations: str | None = None,
    threads: int | None = None,
) -> ShardWeights | FusedShard:
    """``load_shard`` over an open source."""
    activations = activations or default_activations()
    chosen = resolve(kernels or default_kernels(), config)
    if chosen == "numpy":
        return build_shard(source, config, share, progress)
    if activations not in ACTIVATIONS:
        raise ValueError(f"unknown activations {activations!r} (choose from exact, int8)")
    n = threads or default_threads()
    if chosen == "ggml":
        if activations == "exact":
            raise ValueError(
                "the ggml kernels quantize activations to 8 bits (int8): for exact "
                "activations use --kernels onnxruntime or numpy"
            )
        return build_block_shard(source, config, share, threads or ggml_threads(), progress)
    return build_fused(source, config, share, activations == "int8", n, progress)
