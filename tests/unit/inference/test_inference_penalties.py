"""Sampling penalties: presence/frequency (OpenAI's formula) and repetition
(transformers' formula) change the distribution as specified, on every path."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from reconciler.inference.loader import load_model_info, load_shard
from reconciler.inference.model import Engine
from reconciler.inference.sampling import Sampler, SamplingParams, filtered_probs, penalize
from reconciler.inference.sharding import full_share
from reconciler.jobs import messages as m
from tests.inference_ranks import make_engines, run_ranks

LOGITS = np.array([2.0, 1.0, -1.0, 0.5], dtype=np.float32)


def test_frequency_and_presence_follow_openai_formula() -> None:
    params = SamplingParams(frequency_penalty=0.5, presence_penalty=0.25)
    out = penalize(LOGITS, Counter({0: 3, 2: 1}), {0, 2}, params)
    # mu[j] - c[j] * frequency - (c[j] > 0) * presence
    assert out.tolist() == pytest.approx([2.0 - 1.5 - 0.25, 1.0, -1.0 - 0.5 - 0.25, 0.5])
    assert out.dtype == np.float32
    assert LOGITS.tolist() == [2.0, 1.0, -1.0, 0.5]  # the input is not modified


def test_repetition_penalty_divides_positive_and_multiplies_negative() -> None:
    params = SamplingParams(repetition_penalty=2.0)
    out = penalize(LOGITS, Counter(), {0, 2}, params)
    assert out.tolist() == pytest.approx([1.0, 1.0, -2.0, 0.5])


def test_greedy_with_frequency_penalty_stops_repeating() -> None:
    plain = Sampler(SamplingParams())
    assert [plain.sample(LOGITS) for _ in range(3)] == [0, 0, 0]
    penalized = Sampler(SamplingParams(frequency_penalty=2.0))
    # after one 0, its logit is 2 - 2 = 0 < 1: token 1 wins; then 1 - 2 < 0.5: token 3
    assert [penalized.sample(LOGITS) for _ in range(3)] == [0, 1, 3]


def test_repetition_penalty_applies_to_prompt_tokens() -> None:
    sampler = Sampler(SamplingParams(repetition_penalty=4.0), prompt_ids=[0])
    assert sampler.sample(LOGITS) == 1  # 2.0 / 4 = 0.5 < 1.0


def test_presence_penalty_shifts_sampled_frequencies_as_predicted() -> None:
    """Draw the second token many times after a first draw of token 0: its empirical
    share matches softmax of the penalized logits, not of the plain ones."""
    params = SamplingParams(temperature=1.0, presence_penalty=1.5, seed=0)
    expected = filtered_probs(penalize(LOGITS, Counter({0: 1}), {0}, params), 1.0, 0, 1.0)
    plain = filtered_probs(LOGITS, 1.0, 0, 1.0)
    counts: Counter[int] = Counter()
    trials = 4000
    for seed in range(trials):
        sampler = Sampler(SamplingParams(temperature=1.0, presence_penalty=1.5, seed=seed))
        sampler.generated[0], sampler.seen = 1, {0}
        counts[sampler.sample(LOGITS)] += 1
    share = counts[0] / trials
    tolerance = 4 * math.sqrt(expected[0] * (1 - expected[0]) / trials)
    assert abs(share - expected[0]) < tolerance
    assert abs(share - plain[0]) > 5 * tolerance


def test_penalties_turn_off_the_argmax_only_shortcut() -> None:
    assert SamplingParams().argmax_only
    assert not SamplingParams(presence_penalty=0.1).argmax_only
    assert not SamplingParams(repetition_penalty=1.1).argmax_only
    assert not SamplingParams(temperature=0.7).argmax_only


@pytest.mark.parametrize(
    "make",
    [
        partial(SamplingParams, presence_penalty=2.5),
        partial(SamplingParams, frequency_penalty=-2.1),
        partial(SamplingParams, repetition_penalty=0.0),
    ],
    ids=["presence", "frequency", "repetition"],
)
def test_out_of_range_penalties_are_refused(make: Callable[[], SamplingParams]) -> None:
    with pytest.raises(ValueError):
        make()


def test_penalties_travel_in_the_job_offer() -> None:
    params = SamplingParams(presence_penalty=0.5, frequency_penalty=-1.0, repetition_penalty=1.3)
    offer = m.JobOffer(
        "job", 7, "demo", (1, 2), params, 1, "h", 8192, (m.Participant("a", 0, 8192),)
    )
    decoded = m.decode(m.encode(offer))
    assert isinstance(decoded, m.JobOffer) and decoded.sampling == params
    plain = m.JobOffer("job", 7, "demo", (1, 2), SamplingParams(), 1, "h", 8192, offer.participants)
    assert b"penalty" not in m.encode(plain)  # older members read offers without penalties


def _greedy_ids(engine: Any, ids: list[int], params: SamplingParams) -> list[int]:
    return [event.token_id for event in engine.generate(ids, params)]


def test_penalized_greedy_needs_full_logits_across_ranks(models_dir: Path) -> None:
    """With a penalty, greedy decoding must see every logit (not only each rank's best):
    two ranks pick what one rank picks, and the penalty changes what is picked."""
    path = models_dir / "tiny-qwen2-hf"  # its greedy output repeats itself
    info = load_model_info(path)
    ids = info.tokenizer.encode("Hello world, this is a tiny")
    oracle = Engine(info.config, load_shard(path, info.config, full_share(info.config),
                                            activations="exact"))  # fmt: skip
    plain = SamplingParams(max_tokens=12, ignore_eos=True)
    penalized = SamplingParams(max_tokens=12, ignore_eos=True, frequency_penalty=2.0,
                               presence_penalty=1.0, repetition_penalty=1.5)  # fmt: skip
    want_plain, want = _greedy_ids(oracle, ids, plain), _greedy_ids(oracle, ids, penalized)
    assert want != want_plain
    assert max(Counter(want).values()) < max(Counter(want_plain).values())
    split = [(0, 5000), (5000, 8192)]
    engines = make_engines(path, info.config, split, 8192, cache_len=64, activations="exact")
    assert run_ranks(engines, lambda e: _greedy_ids(e, ids, penalized)) == [want, want]
