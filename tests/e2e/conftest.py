"""Process tests: agents that outlive a test are killed, by PID, by the fixture."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from agents import AgentProcess

from reconciler.home import Home


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
