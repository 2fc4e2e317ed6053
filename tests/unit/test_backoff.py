"""The one retry policy: doubling from base, capped, forgotten on success."""

from __future__ import annotations

import pytest

from reconciler.backoff import Backoff, BackoffPolicy


def test_waits_double_from_base_up_to_the_cap() -> None:
    policy = BackoffPolicy(0.5, 3.0)
    assert [policy.delay(n) for n in range(6)] == [0.0, 0.5, 1.0, 2.0, 3.0, 3.0]
    assert policy.delay(10_000) == 3.0  # no overflow after a very long outage


def test_a_success_resets_the_count() -> None:
    backoff = Backoff(BackoffPolicy(0.1, 2.0))
    assert [backoff.failed() for _ in range(3)] == [0.1, 0.2, 0.4]
    backoff.succeeded()
    assert backoff.failed() == 0.1


@pytest.mark.parametrize(("base", "cap"), [(0.0, 1.0), (-1.0, 1.0), (2.0, 1.0)])
def test_nonsense_policies_are_refused(base: float, cap: float) -> None:
    with pytest.raises(ValueError, match="base <= cap"):
        BackoffPolicy(base, cap)
