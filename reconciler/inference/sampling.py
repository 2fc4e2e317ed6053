"""Choosing the next token: greedy, temperature, top-k, top-p, with a seeded generator.

Every rank holds identical logits (all-gathered) and a generator seeded alike, so every
rank draws the same token without a broadcast.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


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

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        if self.temperature < 0.0 or self.top_k < 0 or not 0.0 < self.top_p <= 1.0:
            raise ValueError("need temperature >= 0, top_k >= 0 and 0 < top_p <= 1")


class Sampler:
    """Stateful sampler: one per generation (owns the seeded generator)."""

    def __init__(self, params: SamplingParams) -> None:
        self.params = params
        self.rng = np.random.default_rng(params.seed)

    def sample(self, logits: NDArray[np.float32]) -> int:
        """Next token id from logits [V]."""
        p = self.params
        if p.temperature == 0.0:
            return int(np.argmax(logits))
        probs = filtered_probs(logits, p.temperature, p.top_k, p.top_p)  # [V]
        cdf = np.cumsum(probs)  # [V]
        return int(
            min(np.searchsorted(cdf, self.rng.random() * cdf[-1], side="right"), len(cdf) - 1)
        )


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
