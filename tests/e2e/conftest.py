"""Process tests: agents and namespaces a test makes are removed by its fixtures."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import agents
from agents import AgentProcess
from delayline import DelayLine, open_delay_line
from lan import Lan, netns_available

from reconciler.home import Home

NETNS = netns_available()


@pytest.fixture(autouse=True)
def watched_by_wait_for(tmp_path: Path) -> Iterator[None]:
    """``wait_for`` wakes on changes to the files under the test's folder (every
    device's home lives there; a module fixture's folder is watched by that fixture)."""
    with agents.watching(tmp_path):
        yield


@pytest.fixture
def start_agent() -> Iterator[Callable[..., AgentProcess]]:
    started: list[AgentProcess] = []

    def start(home: Home, *extra: str) -> AgentProcess:
        agent = AgentProcess(home, *extra)
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.kill()


@pytest.fixture
def lan(tmp_path: Path) -> Iterator[Lan]:
    """Devices in network namespaces on a bridge (root), else on loopback."""
    network = Lan(tmp_path, NETNS)
    try:
        yield network
    finally:
        if not os.environ.get("MESHNET_KEEP_LAN"):
            network.close()


@pytest.fixture
def delayed_lan(lan: Lan) -> Iterator[Callable[..., DelayLine]]:
    """``delayed_lan(one_way_ms, loss=0.0)``: join the LAN's two bridges (``br0``,
    ``br1``) through a delay line; devices added on different bridges then talk across
    it. Needs namespaces (root); the line is stopped before the LAN is removed."""
    lines: list[DelayLine] = []

    def start(one_way_ms: float, loss: float = 0.0) -> DelayLine:
        if lan.hub is None:
            pytest.skip("a delay line needs root and network namespaces")
        line = open_delay_line(lan.hub, "br0", "br1", one_way_ms, loss, lifetime=300.0)
        lines.append(line)
        return line

    yield start
    for line in lines:
        line.stop()
