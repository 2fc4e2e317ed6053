"""`mesh demo` waits for each step (the certificate, the ring) on what the device's agent
pushes over its local API (``watch``), not on a timer."""

from __future__ import annotations

from pathlib import Path

import pytest

from manifests import Pool
from meshctl import demo
from meshctl.demo import DemoDevice, wait_until
from reconciler.store import Store
from tests.agent_thread import idle_runner, local_api_thread


def test_a_wait_is_woken_by_the_change_the_agent_pushes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(demo, "TICK_SECONDS", 60.0)  # a tick would outlast the timeout
    device = DemoDevice(tmp_path, "device1", {})
    calls: list[int] = []

    with (
        Store.open(device.home.root) as store,
        local_api_thread(device.home, idle_runner(), watch_store=True),
    ):

        def check() -> str | None:
            calls.append(store.revision())
            if len(calls) == 2:  # the watch is open (its first event was the revision now)
                store.apply(Pool.model_validate({"metadata": {"name": "p"}, "spec": {}}))
            found = store.get("Pool", "p")
            return found.metadata.name if len(calls) > 2 and found is not None else None

        assert wait_until(check, 30.0, "the pool", device) == "p"
    assert len(calls) == 3  # now, once the watch was open, and once pushed after the write


def test_a_wait_gives_up_at_its_timeout(tmp_path: Path) -> None:
    device = DemoDevice(tmp_path, "device1", {})
    with pytest.raises(TimeoutError, match="timed out after 0s: the ring"):
        wait_until(lambda: None, 0.0, "the ring", device)
