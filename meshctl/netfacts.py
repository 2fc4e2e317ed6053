"""This device's interfaces for a Pool's discovery settings (reconciler/probes.py): the
running agent's view over its local API, or, with no agent, the same probe run here."""

from __future__ import annotations

from typing import Any

from manifests.pool import DiscoverySpec
from meshctl.agentclient import AgentClient, NoAgent
from meshctl.context import home
from meshctl.ports import agent_side


def interface_report(discovery: DiscoverySpec) -> dict[str, Any]:
    """The report; ``seenBy`` says whose view it is: "the agent" or "this command"."""
    try:
        document = discovery.model_dump(by_alias=True, mode="json")
        report = AgentClient(home().agent_socket).interfaces(document)
        return {**report, "seenBy": "the agent"}
    except NoAgent:
        return {**agent_side().interfaces(discovery), "seenBy": "this command"}
