"""Sampling: greedy, temperature, top-k, top-p, seeds."""

from __future__ import annotations

import numpy as np
import pytest

from reconciler.inference.sampling import Sampler, SamplingParams, filtered_probs

LOGITS = np.array([1.0, 3.0, 2.0, 0.5, 2.9], dtype=np.float32)


def test_greedy_takes_argmax() -> None:
    assert Sampler(SamplingParams()).sample(LOGITS) == 1


def test_same_seed_same_tokens_different_seed_differs() -> None:
    def draw(seed: int) -> list[int]:
        s = Sampler(SamplingParams(temperature=2.0, seed=seed))
        return [s.sample(LOGITS) for _ in range(40)]

    assert draw(3) == draw(3)
    assert draw(3) != draw(4)


def test_top_k_keeps_only_the_k_best() -> None:
    probs = filtered_probs(LOGITS, 1.0, 2, 1.0)
    assert set(np.flatnonzero(probs)) == {1, 4}
    assert probs.sum() == pytest.approx(1.0)
    s = Sampler(SamplingParams(temperature=5.0, top_k=2, seed=1))
    assert {s.sample(LOGITS) for _ in range(200)} == {1, 4}


def test_top_p_keeps_the_smallest_nucleus() -> None:
    probs = filtered_probs(LOGITS, 1.0, 0, 0.5)
    full = filtered_probs(LOGITS, 1.0, 0, 1.0)
    assert full[1] < 0.5 and full[1] + full[4] >= 0.5
    assert set(np.flatnonzero(probs)) == {1, 4}


def test_low_temperature_concentrates() -> None:
    assert filtered_probs(LOGITS, 0.05, 0, 1.0)[1] > 0.85
    assert filtered_probs(LOGITS, 100.0, 0, 1.0).max() < 0.25


def test_sampling_frequencies_follow_probabilities() -> None:
    s = Sampler(SamplingParams(temperature=1.0, seed=0))
    counts = np.bincount([s.sample(LOGITS) for _ in range(4000)], minlength=5) / 4000
    np.testing.assert_allclose(counts, filtered_probs(LOGITS, 1.0, 0, 1.0), atol=0.03)


@pytest.mark.parametrize(
    "kwargs", [{"max_tokens": 0}, {"temperature": -1.0}, {"top_p": 0.0}, {"top_k": -1}]
)
def test_bad_parameters_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        SamplingParams(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("draft", [-1, 17, 1000])
def test_draft_tokens_out_of_bounds_are_refused(draft: int) -> None:
    with pytest.raises(ValueError, match=r"draft_tokens must be in \[0, 16\]"):
        SamplingParams(draft_tokens=draft)


def test_draft_tokens_speculate_only_for_greedy_without_penalties() -> None:
    assert SamplingParams(draft_tokens=16).speculative
    assert not SamplingParams().speculative
    assert not SamplingParams(draft_tokens=4, temperature=0.7).speculative
    assert not SamplingParams(draft_tokens=4, repetition_penalty=1.2).speculative
