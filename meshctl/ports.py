"""What the CLI needs of the agent's side in its own process, as a protocol that meshctl
defines and the composition root (reconciler/entry) provides: dependency inversion, so
that meshctl imports no runtime, drivers, engine or daemon (.importlinter).

Live operations of a running agent go through its local API (meshctl/agentclient.py).
This port covers what runs here when no agent does, or without any agent: the engine of
`--local`, a short-lived join, one reconcile of a command's object, the interface probe.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from manifests import Member
    from manifests.pool import DiscoverySpec
    from reconciler.home import Home
    from reconciler.store import Store


class ChatBackend(Protocol):
    """Answers a conversation, yielding text as it comes; ``stop`` ends an answer."""

    def answer(self, messages: list[dict[str, str]]) -> Generator[str, None, None]: ...
    def stop(self) -> None: ...


class AgentSide(Protocol):
    """The agent's code the CLI runs in its own process."""

    def run_local(self, args: dict[str, Any], quiet: bool) -> dict[str, Any]:
        """`mesh inference --local`: the whole model here; the same document as a job."""
        ...

    def local_chat(self, model: str, sampling: dict[str, Any]) -> ChatBackend:
        """`mesh chat --local`: a backend with the whole model loaded here."""
        ...

    def reconcile_now(self, home: Home, store: Store, kind: str, name: str) -> None:
        """One reconcile of one object (`mesh pool-create` answers at once)."""
        ...

    def join_here(
        self, home: Home, store: Store, member: Member, timeout: float, tick: Callable[[], None]
    ) -> bool:
        """Join by LAN beacon in this process until joined or ``timeout``; ``tick`` runs
        about every 0.2 s (it may raise to give up). Whether the device joined."""
        ...

    def interfaces(self, discovery: DiscoverySpec) -> dict[str, Any]:
        """The interface report of reconciler/probes.py, as this process sees it."""
        ...

    def agent_command(self) -> list[str]:
        """The command line that runs an agent in the foreground (`meshctl agent`)."""
        ...


class _Missing:
    def __getattr__(self, name: str) -> Any:
        from meshctl.context import CliError

        raise CliError(
            f"this command needs the agent's code ({name}): run it as `mesh` or `meshctl` "
            "(the installed commands), or `python -m reconciler.entry`"
        )


_side: AgentSide = _Missing()


def provide(side: AgentSide) -> None:
    """Called once by the composition root before any command runs."""
    global _side
    _side = side


def agent_side() -> AgentSide:
    return _side
