"""SentencePiece vocabularies from GGUF (``tokenizer.ggml.model == "llama"``) as ``tokenizers`` BPE.

Llama 2, Mistral, TinyLlama and Gemma files carry the pieces, their scores and their types
but no merges. SentencePiece's BPE repeatedly joins the adjacent pair whose join is the
best-ranked piece, so the merges are every split of a piece into two pieces that both
exist, ranked by the piece: by score, except for Gemma whose scores do not follow its
merge order while the order of the pieces in the file does. This is the tokenizer
transformers builds from the same file (its ``gguf_tokenizer_mapping``): a BPE with byte
fallback (``<0x41>`` pieces for characters outside the vocabulary).

- Llama-style: a ``Metaspace`` pre-tokenizer writes spaces as ``▁`` and prefixes the first
  word with one; the decoder strips that space again.
- Gemma-style: a normalizer replaces spaces with ``▁`` and nothing is prefixed. Pieces made
  only of spaces are stored with real spaces in the file and respelled with ``▁``.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter

from tokenizers import AddedToken, decoders, models, normalizers, pre_tokenizers
from tokenizers import Tokenizer as HFTokenizer

SPACE = "\u2581"  # "▁", SentencePiece's visible space
GEMMA_ARCHS = ("gemma", "gemma2", "gemma3")
_CONTROL, _USER_DEFINED = 3, 4


def respell(tokens: Sequence[str]) -> list[str]:
    """Gemma's pieces of only spaces, written with ``▁`` as the rest of the vocabulary is."""
    return [SPACE * len(t) if " " in t and not t.strip() else t for t in tokens]


def merges_from_vocab(tokens: Sequence[str], priority: Sequence[float]) -> list[tuple[str, str]]:
    """Every split of a piece into two pieces of the vocabulary, best piece first.

    ``priority[i]`` ranks piece ``i`` (higher merges first). Splits of one piece come
    longer-left first; equal ranks keep the vocabulary's order (a stable sort).
    """
    index = {t: i for i, t in enumerate(tokens)}
    found: list[tuple[float, int, int, str, str]] = []
    for piece, rank in dict(zip(tokens, priority, strict=True)).items():
        n = len(piece)
        local = [
            (piece[:k], piece[k:]) for k in range(1, n) if piece[k:] in index and piece[:k] in index
        ]
        if len(local) > 1:
            local.sort(key=lambda lr: (index[lr[0]], index[lr[1]]))
        found += [(rank, len(left), n - len(left), left, right) for left, right in local]
    found.sort(key=itemgetter(0, 1, 2), reverse=True)
    return [(left, right) for _, _, _, left, right in found]


def sentencepiece_backend(
    arch: str,
    tokens: Sequence[str],
    scores: Sequence[float] | None,
    types: Sequence[int],
    unk_id: int | None,
) -> HFTokenizer:
    """The ``tokenizers`` tokenizer a SentencePiece GGUF vocabulary describes."""
    gemma = arch in GEMMA_ARCHS
    pieces = respell(tokens) if gemma else list(tokens)
    if gemma or scores is None:
        priority: Sequence[float] = [-float(i) for i in range(len(pieces))]
    else:
        priority = scores
    vocab = {t: i for i, t in enumerate(pieces)}
    unk = pieces[unk_id] if unk_id is not None and 0 <= unk_id < len(pieces) else None
    backend = HFTokenizer(
        models.BPE(
            vocab,
            merges_from_vocab(pieces, priority),
            unk_token=unk,
            fuse_unk=True,
            byte_fallback=True,
        )
    )
    steps: list[decoders.Decoder] = [
        decoders.Replace(SPACE, " "),
        decoders.ByteFallback(),
        decoders.Fuse(),
    ]
    if gemma:
        backend.normalizer = normalizers.Replace(" ", SPACE)
    else:
        backend.pre_tokenizer = pre_tokenizers.Metaspace(
            replacement=SPACE, prepend_scheme="first", split=False
        )
        steps.append(decoders.Strip(content=" ", left=1))
    backend.decoder = decoders.Sequence(steps)
    _add_special(backend, tokens, types, vocab)
    return backend


def _add_special(
    backend: HFTokenizer, tokens: Sequence[str], types: Sequence[int], vocab: dict[str, int]
) -> None:
    """Control pieces become special tokens; user-defined pieces (Gemma's runs of newlines,
    ``<start_of_turn>`` ...) are matched whole in the text."""
    control = [t for t, k in zip(tokens, types, strict=False) if k == _CONTROL]
    user = [t for t, k in zip(tokens, types, strict=False) if k == _USER_DEFINED and t in vocab]
    backend.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in control])
    backend.add_tokens([AddedToken(t, normalized=False, special=False) for t in user])
