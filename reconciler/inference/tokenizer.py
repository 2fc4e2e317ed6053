"""Tokenizers from GGUF metadata or ``tokenizer.json``, chat templates, streaming detokenization.

A GGUF ``gpt2`` tokenizer (tokens + merges) becomes a ``tokenizers`` byte-level BPE; the
pre-tokenizer follows ``tokenizer.ggml.pre`` the way transformers' GGUF loader does (GPT-2
regex unless a known split is named). Control tokens become special tokens and
user-defined tokens plain added tokens, so ``<|im_start|>`` stays whole. A ``llama``
(SentencePiece) vocabulary is built in ``sentencepiece.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.inference.errors import ModelError
from reconciler.inference.hf_model import read_json

if TYPE_CHECKING:  # tokenizers and jinja2 load on first use: a pool member that only
    # computes (its share of the weights) never pays for them
    from tokenizers import Tokenizer as HFTokenizer

_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_SPLITS = {"llama3": _LLAMA3_SPLIT, "llama-bpe": _LLAMA3_SPLIT, "qwen2": _QWEN2_SPLIT}
_CONTROL, _USER_DEFINED = 3, 4


@dataclass
class Tokenizer:
    """Text <-> ids with the model's BOS/EOS behaviour and chat template."""

    backend: HFTokenizer
    add_bos: bool = False  # prepend bos_id ourselves (GGUF); tokenizer.json does it itself
    add_eos: bool = False
    bos_id: int | None = None
    eos_ids: tuple[int, ...] = ()
    chat_template: str | None = None
    special: dict[str, str] = field(default_factory=dict)  # bos_token/eos_token strings

    def encode(self, text: str, add_special: bool = True) -> list[int]:
        """Token ids of ``text``; BOS/EOS added per the model's settings when ``add_special``."""
        ids: list[int] = self.backend.encode(text, add_special_tokens=add_special).ids
        if add_special and self.add_bos and self.bos_id is not None:
            ids = [self.bos_id, *ids]
        if add_special and self.add_eos and self.eos_ids:
            ids = [*ids, self.eos_ids[0]]
        return ids

    def decode(self, ids: Sequence[int], skip_special: bool = True) -> str:
        """Text of ``ids``."""
        return str(self.backend.decode(list(ids), skip_special_tokens=skip_special))

    def apply_chat_template(
        self, messages: list[dict[str, str]], add_generation_prompt: bool = True
    ) -> str:
        """The prompt text for a conversation, rendered with the model's Jinja template
        (as transformers renders it: see chattemplate.py)."""
        if not self.chat_template:
            raise ValueError("this model has no chat template")
        from reconciler.inference.chattemplate import render_chat

        return render_chat(self.chat_template, messages, add_generation_prompt, self.special)

    def stream(self) -> IncrementalDecoder:
        """A fresh incremental decoder for one generation."""
        return IncrementalDecoder(self)


class IncrementalDecoder:
    """Turns ids into text deltas, holding back incomplete UTF-8 sequences."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tok = tokenizer
        self._ids: list[int] = []
        self._prefix = 0
        self._read = 0

    def feed(self, token: int) -> str:
        """The new text that ``token`` completes (may be empty)."""
        self._ids.append(token)
        before = self._tok.decode(self._ids[self._prefix : self._read])
        after = self._tok.decode(self._ids[self._prefix :])
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self._prefix, self._read = self._read, len(self._ids)
            return after[len(before) :]
        return ""


def tokenizer_from_gguf(fields: dict[str, Any], path: str | Path) -> Tokenizer:
    """Build the tokenizer a GGUF file describes (``fields``: key -> contents)."""
    kind = fields.get("tokenizer.ggml.model")
    tokens = fields.get("tokenizer.ggml.tokens")
    types = fields.get("tokenizer.ggml.token_type") or []
    if kind == "gpt2" and tokens and fields.get("tokenizer.ggml.merges") is not None:
        backend = _byte_level_bpe(fields, tokens, types, path)
    elif kind == "llama" and tokens:
        backend = _sentencepiece(fields, tokens, types, path)
    else:
        raise ModelError(
            path,
            f"cannot build a tokenizer: model {kind!r} "
            "(need 'gpt2' BPE with merges or 'llama' SentencePiece with tokens)",
        )
    bos = fields.get("tokenizer.ggml.bos_token_id")
    eos = fields.get("tokenizer.ggml.eos_token_id")
    return Tokenizer(
        backend=backend,
        # llama.cpp and transformers add BOS to a SentencePiece vocabulary unless told not to
        add_bos=_flag(fields.get("tokenizer.ggml.add_bos_token"), default=kind == "llama"),
        add_eos=bool(fields.get("tokenizer.ggml.add_eos_token", False)),
        bos_id=bos,
        eos_ids=tuple(i for i in (eos, fields.get("tokenizer.ggml.eot_token_id")) if i is not None),
        chat_template=fields.get("tokenizer.chat_template"),
        special=_special_strings(tokens, bos, eos),
    )


def _flag(value: Any, default: bool) -> bool:
    return default if value is None else bool(value)


def _byte_level_bpe(
    fields: dict[str, Any], tokens: list[str], types: list[int], path: str | Path
) -> HFTokenizer:
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models

    try:
        vocab = {t: i for i, t in enumerate(tokens)}
        pairs = [tuple(m.split(" ", 1)) for m in fields["tokenizer.ggml.merges"]]
        backend = HFTokenizer(models.BPE(vocab, pairs, fuse_unk=False, ignore_merges=False))
    except Exception as exc:  # tokenizers raises Exception subclasses of its own
        raise ModelError(path, f"cannot build a tokenizer: {exc}") from exc
    _set_pre_tokenizer(backend, fields.get("tokenizer.ggml.pre"))
    backend.decoder = decoders.ByteLevel()
    _add_special(backend, tokens, types)
    return backend


def _sentencepiece(
    fields: dict[str, Any], tokens: list[str], types: list[int], path: str | Path
) -> HFTokenizer:
    scores = fields.get("tokenizer.ggml.scores")
    if scores is not None and len(scores) != len(tokens):
        raise ModelError(path, f"{len(scores)} token scores for {len(tokens)} tokens")
    from reconciler.inference.sentencepiece import sentencepiece_backend

    try:
        return sentencepiece_backend(
            str(fields.get("general.architecture") or ""),
            tokens,
            scores,
            types,
            fields.get("tokenizer.ggml.unknown_token_id"),
        )
    except Exception as exc:  # tokenizers raises Exception subclasses of its own
        raise ModelError(path, f"cannot build a tokenizer: {exc}") from exc


def _set_pre_tokenizer(backend: HFTokenizer, pre: str | None) -> None:
    from tokenizers import Regex, pre_tokenizers

    split = _SPLITS.get(pre or "")
    if split is None:
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        return
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(split), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )


def _add_special(backend: HFTokenizer, tokens: list[str], types: list[int]) -> None:
    from tokenizers import AddedToken

    control = [t for t, k in zip(tokens, types, strict=False) if k == _CONTROL]
    user = [t for t, k in zip(tokens, types, strict=False) if k == _USER_DEFINED]
    backend.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in control])
    backend.add_tokens([AddedToken(t, normalized=False, special=False) for t in user])


def _special_strings(tokens: list[str], bos: int | None, eos: int | None) -> dict[str, str]:
    out = {}
    if bos is not None and 0 <= bos < len(tokens):
        out["bos_token"] = tokens[bos]
    if eos is not None and 0 <= eos < len(tokens):
        out["eos_token"] = tokens[eos]
    return out


def tokenizer_from_hf(directory: Path, bos_id: int | None, eos_ids: tuple[int, ...]) -> Tokenizer:
    """Load ``tokenizer.json`` and the chat template/BOS settings of ``tokenizer_config.json``."""
    path = directory / "tokenizer.json"
    if not path.is_file():
        raise ModelError(path, "file is missing")
    from tokenizers import Tokenizer as HFTokenizer

    try:
        backend = HFTokenizer.from_file(str(path))
    except Exception as exc:
        raise ModelError(path, f"cannot load tokenizer: {exc}") from exc
    cfg_path = directory / "tokenizer_config.json"
    cfg: dict[str, Any] = {}
    if cfg_path.is_file():
        cfg = read_json(cfg_path)
    template = cfg.get("chat_template")
    jinja_file = directory / "chat_template.jinja"
    if template is None and jinja_file.is_file():
        template = jinja_file.read_text(encoding="utf-8")
    special = {k: v for k in ("bos_token", "eos_token") if isinstance(v := cfg.get(k), str)}
    return Tokenizer(backend, False, False, bos_id, eos_ids, template, special)
