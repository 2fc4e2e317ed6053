"""The agent's own figures: free memory at once, the kernel speed once the self-test
(run once per process, off the event loop) is done; a failed or disabled self-test
leaves the speed unmeasured and the agent running."""

from __future__ import annotations

import asyncio

import pytest

from reconciler.inference.selftest import SelfTest
from reconciler.runtime import measuring

Calls = list[tuple[float | None, int | None]]


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(measuring, "_result", [])


def run_until_second_update() -> Calls:
    calls: Calls = []

    async def main() -> None:
        updated = asyncio.Event()

        def after() -> None:
            if len(calls) >= 2:
                updated.set()

        task = asyncio.create_task(
            measuring.measure_at_start(lambda s, f: calls.append((s, f)), after)
        )
        await asyncio.wait_for(updated.wait(), 30)
        task.cancel()

    asyncio.run(main())
    return calls


def test_free_memory_first_then_the_self_test_speed(monkeypatch: pytest.MonkeyPatch) -> None:
    runs: list[int] = []

    def fake() -> SelfTest:
        runs.append(1)
        return SelfTest(5e9, "numpy", "exact", 1, 7)

    monkeypatch.setattr(measuring, "run_selftest", fake)
    calls = run_until_second_update()
    assert calls[0][0] is None and (calls[0][1] or 0) > 0
    assert calls[1][0] == 5e9 and (calls[1][1] or 0) > 0
    assert measuring.selftest_once() is not None and runs == [1]  # once per process
    assert measuring.self_measures({"speedBytesPerSecond": 5e9})["selftest"]["runs"] == 7


def test_failed_or_disabled_self_test_leaves_speed_unmeasured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken() -> SelfTest:
        raise RuntimeError("no kernels here")

    monkeypatch.setattr(measuring, "run_selftest", broken)
    assert [speed for speed, _ in run_until_second_update()] == [None, None]
    monkeypatch.setattr(measuring, "_result", [])
    monkeypatch.setenv(measuring.SELFTEST_ENV, "0")
    assert measuring.selftest_once() is None


def test_free_memory_is_positive() -> None:
    assert measuring.free_memory_bytes() > 0


def test_a_refresh_states_free_memory_and_keeps_the_speed() -> None:
    calls: Calls = []
    flushed: list[int] = []
    measuring.refresh_free_memory(lambda s, f: calls.append((s, f)), lambda: flushed.append(1))
    assert len(calls) == 1 and calls[0][0] is None and (calls[0][1] or 0) > 0
    assert flushed == [1]  # the driver flushes the machine after each update


def test_the_free_memory_stated_is_at_most_the_members_offer() -> None:
    """A member offering less than the device has free (``spec.capacity.memoryBytes``)
    states its offer to the pool; one offering more states what is free."""
    calls: Calls = []
    state = lambda s, f: calls.append((s, f))  # noqa: E731
    measuring.refresh_free_memory(state, lambda: None, lambda: 12345)
    measuring.refresh_free_memory(state, lambda: None, lambda: 1 << 62)
    assert calls[0] == (None, 12345)
    assert 12345 < (calls[1][1] or 0) < 1 << 62
