"""What the CLI asks of the agent's code: over the running agent's local API, or, when
no agent answers, run in this process through meshctl/ports.py (a short-lived agent for
the command)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from meshctl.agentclient import AgentClient, NoAgent
from meshctl.context import home
from meshctl.ports import agent_side

if TYPE_CHECKING:
    from manifests.pool import DiscoverySpec
    from reconciler.home import Home
    from reconciler.store import Store


def interface_report(discovery: DiscoverySpec) -> dict[str, Any]:
    """This device's interfaces for a Pool's discovery settings (reconciler/probes.py);
    ``seenBy`` says whose view it is: "the agent" or "this command"."""
    try:
        document = discovery.model_dump(by_alias=True, mode="json")
        report = AgentClient(home().agent_socket).interfaces(document)
        return {**report, "seenBy": "the agent"}
    except NoAgent:
        return {**agent_side().interfaces(discovery), "seenBy": "this command"}


def reconcile_now(device: Home, store: Store, kind: str, name: str) -> str:
    """One reconcile of one object, so that a command shows its result at once: by the
    running agent's executor, else here. Who did it: "the agent" or "this command"."""
    try:
        AgentClient(device.agent_socket).reconcile(kind, name)
        return "the agent"
    except NoAgent:
        agent_side().reconcile_now(device, store, kind, name)
        return "this command"
