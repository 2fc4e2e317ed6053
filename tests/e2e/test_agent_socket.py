"""The agent's local API as a real process serves it: private, answered by the running
agent, left stale by kill -9 and replaced by the next agent, removed at a clean stop."""

from __future__ import annotations

import signal
import stat
from collections.abc import Callable
from typing import Any

import pytest
from agents import AgentProcess, cli, wait_for

from meshctl.agentclient import AgentClient, NoAgent
from reconciler.home import Home

Start = Callable[..., AgentProcess]


def _ping(home: Home) -> dict[str, Any] | None:
    try:
        return AgentClient(home.agent_socket).ping()
    except NoAgent:
        return None


def test_the_socket_lives_and_dies_with_its_agent(home: Home, start_agent: Start) -> None:
    cli(home, "init", "--network-id", "test", "--name", "dev1")
    first = start_agent(home)
    answer = wait_for(lambda: _ping(home), what="the local API")
    assert answer["pid"] == first.proc.pid
    assert stat.S_IMODE(home.agent_socket.stat().st_mode) == 0o600

    first.kill()
    assert home.agent_socket.is_socket()  # left behind: nobody removed it
    with pytest.raises(NoAgent):
        AgentClient(home.agent_socket).ping()

    second = start_agent(home)
    answer = wait_for(lambda: _ping(home), what="the next agent's local API")
    assert answer["pid"] == second.proc.pid
    assert "replacing the stale local API socket" in home.log_file("agent").read_text()
    assert second.stop(signal.SIGTERM) == 0
    assert not home.agent_socket.exists()
