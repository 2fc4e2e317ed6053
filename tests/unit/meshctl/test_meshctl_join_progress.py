"""`mesh pool-join` with an agent running: the join's progress and its end are pushed by
the agent's local API (``watch``), not read from the store on a timer."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from manifests import Member
from meshctl import join_cmd
from meshctl.context import CliError
from reconciler.home import Home
from reconciler.observed import join_key
from reconciler.store import Store
from tests.agent_thread import idle_runner, local_api_thread

POOL = {"name": "p", "id": "pool-1", "rootFingerprint": "sha256:" + "ab" * 32}


@pytest.fixture
def store(home: Home) -> Iterator[Store]:
    with Store.open(home.root) as opened:
        opened.apply(Member.model_validate({"metadata": {"name": "m"}, "spec": {"pool": POOL}}))
        yield opened


def _scripted(monkeypatch: pytest.MonkeyPatch, steps: list[Callable[[], object]]) -> list[str]:
    """Each progress line the CLI shows runs the next step (the agent's next write);
    a tick without a push would take longer than the join's timeout."""
    shown: list[str] = []
    progress = join_cmd._progress

    def showing(store: Store, member: str, started: float) -> str:
        line = progress(store, member, started)
        shown.append(line)
        if len(shown) > 1 and steps:  # the first line is shown before the loop
            steps.pop(0)()
        return line

    monkeypatch.setattr(join_cmd, "_progress", showing)
    monkeypatch.setattr(join_cmd, "TICK_SECONDS", 60.0)
    return shown


def test_the_join_ends_when_the_agent_pushes_joined(
    home: Home, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    shown = _scripted(monkeypatch, [
        lambda: store.put_observed(join_key("m"), {"state": "pending", "reason": "asked the admin"}),
        lambda: store.patch_status("Member", "m", {"phase": "Joined"}),
    ])  # fmt: skip
    with local_api_thread(home, idle_runner(), watch_store=True):
        assert join_cmd._wait_for_agent(store, "m", timeout=30.0) is True
    assert any(line.endswith("asked the admin") for line in shown)


def test_a_refusal_pushed_by_the_agent_is_an_error(
    home: Home, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    _scripted(monkeypatch, [
        lambda: store.put_observed(join_key("m"), {"state": "denied", "reason": "bad token"}),
    ])  # fmt: skip
    with (
        local_api_thread(home, idle_runner(), watch_store=True),
        pytest.raises(CliError, match="refused this device: bad token"),
    ):
        join_cmd._wait_for_agent(store, "m", timeout=30.0)
