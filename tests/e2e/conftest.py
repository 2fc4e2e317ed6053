"""Process tests: agents and namespaces a test makes are removed by its fixtures."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from agents import AgentProcess
from lan import Lan, netns_available

from reconciler.home import Home

NETNS = netns_available()


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
