"""Choosing the next token: penalties, then greedy, temperature, top-k, top-p, with a
seeded generator.

Penalties change the logits before anything else, as OpenAI and Hugging Face define them:

- ``frequency_penalty`` and ``presence_penalty`` (OpenAI, in [-2, 2]) subtract
  ``count * frequency + (count > 0) * presence`` from the logit of every token already
  *generated* ``count`` times in this completion;
- ``repetition_penalty`` (CTRL / transformers, > 0, 1 = off) divides the positive logits
  and multiplies the negative ones of every token seen in the prompt or the completion.

Every rank holds identical logits (all-gathered) and a generator seeded alike, so every
rank draws the same token without a broadcast.

``draft_tokens`` turns on speculative decoding (``speculative.py``) for greedy jobs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

MAX_DRAFT_TOKENS = 16  # drafted tokens per verifying pass, at most


@dataclass(frozen=True)
class SamplingParams:
    """How to pick tokens and when to stop."""

    max_tokens: int = 64
    temperature: float = 0.0  # 0 -> greedy
    top_k: int = 0  # 0 -> off
    top_p: float = 1.0  # 1 -> off
    seed: int = 0
    stop: tuple[str, ...] = ()  # stop strings (need a tokenizer to be seen)
    ignore_eos: bool = False
    presence_penalty: float = 0.0  # OpenAI's, in [-2, 2]
    frequency_penalty: float = 0.0  # OpenAI's, in [-2, 2]
    repetition_penalty: float = 1.0  # transformers', > 0; 1 -> off
    draft_tokens: int = 0  # prompt-lookup drafts verified per pass (greedy only); 0 -> off

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        if self.temperature < 0.0 or self.top_k < 0 or not 0.0 < self.top_p <= 1.0:
            raise ValueError("need temperature >= 0, top_k >= 0 and 0 < top_p <= 1")
        if not (abs(self.presence_penalty) <= 2.0 and abs(self.frequency_penalty) <= 2.0):
            raise ValueError("presence_penalty and frequency_penalty must be in [-2, 2]")
        if not 0.0 < self.repetition_penalty <= 10.0:
            raise ValueError("repetition_penalty must be in (0, 10]")
        if not 0 <= self.draft_tokens <= MAX_DRAFT_TOKENS:
            raise ValueError(f"draft_tokens must be in [0, {MAX_DRAFT_TOKENS}] (0 turns it off)")

    @property
    def penalized(self) -> bool:
        """Whether any penalty changes the logits."""
        return bool(self.presence_penalty or self.frequency_penalty) or (
            self.repetition_penalty != 1.0
        )

    @property
    def argmax_only(self) -> bool:
        """Greedy without penalties: only the best logit matters (no full gather needed)."""
        return self.temperature == 0.0 and not self.penalized

    @property
    def speculative(self) -> bool:
        """Whether generation drafts and verifies tokens (greedy without penalties only:
        sampled or penalized jobs ignore ``draft_tokens``)."""
        return self.draft_tokens > 0 and self.argmax_only


class Sampler:
    """Stateful sampler: one per generation (owns the seeded generator)."""

    def __init__(self, params: SamplingParams, prompt_ids: Sequence[int] = ()) -> None:
        self.params = params
        self.rng = np.random.default_rng(params.seed)
        self.generated: Counter[int] = Counter()
        self.seen: set[int] = set(prompt_ids)

    def sample(self, logits: NDArray[np.float32]) -> int:
        """Next token id from logits [V] (recorded for the penalties of later tokens)."""
        p = self.params
        if p.penalized:
            logits = penalize(logits, self.generated, self.seen, p)
        if p.temperature == 0.0:
            token = int(np.argmax(logits))
        else:
            probs = filtered_probs(logits, p.temperature, p.top_k, p.top_p)  # [V]
            cdf = np.cumsum(probs)  # [V]
            token = int(
                min(np.searchsorted(cdf, self.rng.random() * cdf[-1], side="right"), len(cdf) - 1)
            )
        self.generated[token] += 1
        self.seen.add(token)
        return token


def penalize(
    logits: NDArray[np.float32],
    generated: Counter[int],
    seen: set[int],
    params: SamplingParams,
) -> NDArray[np.float32]:
    """A penalized copy of logits [V] (see the module docstring for the formulas)."""
    out = logits.astype(np.float32, copy=True)  # [V]
    if params.repetition_penalty != 1.0 and seen:
        ids = np.fromiter((i for i in seen if 0 <= i < out.size), dtype=np.int64)  # [S]
        vals = out[ids]  # [S]
        penalty = np.float32(params.repetition_penalty)
        out[ids] = np.where(vals > 0, vals / penalty, vals * penalty)
    if (params.presence_penalty or params.frequency_penalty) and generated:
        ids = np.fromiter((i for i in generated if 0 <= i < out.size), dtype=np.int64)  # [G]
        counts = np.array([generated[int(i)] for i in ids], dtype=np.float32)  # [G]
        out[ids] -= counts * np.float32(params.frequency_penalty) + np.float32(
            params.presence_penalty
        )
    return out


def filtered_probs(
    logits: NDArray[np.float32], temperature: float, top_k: int, top_p: float
) -> NDArray[np.float64]:
    """Probabilities [V] after temperature, top-k and top-p (nucleus) filtering."""
    scaled = logits.astype(np.float64) / temperature  # [V]
    if 0 < top_k < scaled.size:
        kth = np.partition(scaled, -top_k)[-top_k]
        scaled = np.where(scaled >= kth, scaled, -np.inf)
    probs = np.exp(scaled - np.max(scaled))  # [V]
    probs /= probs.sum()
    if top_p < 1.0:
        order = np.argsort(-probs, kind="stable")  # [V]
        before = np.cumsum(probs[order]) - probs[order]  # mass ranked strictly above each
        keep = np.zeros(probs.size, dtype=bool)
        keep[order[before < top_p]] = True
        probs = np.where(keep, probs, 0.0)
        probs /= probs.sum()
    return probs
