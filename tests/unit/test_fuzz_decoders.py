"""Property tests for every decoder of network and file input (small budgets; the long
run is bench/fuzz.py). Arbitrary bytes and mutated valid inputs must decode, or be
refused with the module's documented error, or be dropped by the protocol machine
with an event and no state change; see tests/fuzzing/targets.py for each contract."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzzing.targets import TARGETS, mutate

NAMES = sorted(TARGETS)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("name", NAMES)
def test_seeds_are_accepted(name: str) -> None:
    target = TARGETS[name]
    for seed in target.seeds():
        target.run(seed)


@pytest.mark.parametrize("name", NAMES)
@FAST
@given(data=st.binary(max_size=600))
def test_arbitrary_bytes(name: str, data: bytes) -> None:
    TARGETS[name].run(data)


@pytest.mark.parametrize("name", NAMES)
@FAST
@given(choice=st.integers(0, 2**16), rng_seed=st.integers(0, 2**32 - 1))
def test_mutated_valid_inputs(name: str, choice: int, rng_seed: int) -> None:
    target = TARGETS[name]
    seeds = target.seeds()
    rng = random.Random(rng_seed)
    TARGETS[name].run(mutate(seeds[choice % len(seeds)], rng, seeds))
