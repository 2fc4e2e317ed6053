"""The agent's code the CLI runs in its own process (meshctl/ports.py's AgentSide).
Every method imports what it needs when called: `mesh version` pays for none of it."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from manifests import Member
    from manifests.pool import DiscoverySpec
    from meshctl.ports import ChatBackend
    from reconciler.home import Home
    from reconciler.store import Store

TICK_SECONDS = 1.0  # a short-lived join wakes on the admin's answers; this refreshes the display


class InProcessSide:
    """meshctl's AgentSide, provided by the composition root (reconciler/entry)."""

    def run_local(self, args: dict[str, Any], quiet: bool) -> dict[str, Any]:
        from reconciler.entry.localengine import run_local

        return run_local(args, quiet)

    def local_chat(self, model: str, sampling: dict[str, Any]) -> ChatBackend:
        from reconciler.entry.localengine import local_chat

        return local_chat(model, sampling)

    def reconcile_now(self, home: Home, store: Store, kind: str, name: str) -> None:
        from reconciler.oneshot import reconcile_now

        reconcile_now(home, store, kind, name)

    def join_here(
        self, home: Home, store: Store, member: Member, timeout: float, tick: Callable[[], None]
    ) -> bool:
        import asyncio

        return asyncio.run(_join_here(home, store, member, timeout, tick))

    def interfaces(self, discovery: DiscoverySpec) -> dict[str, Any]:
        from reconciler.probes import interface_report

        return interface_report(discovery)

    def agent_command(self) -> list[str]:
        return [sys.executable, "-m", "reconciler.entry", "agent"]


async def _join_here(
    home: Home, store: Store, member: Member, timeout: float, tick: Callable[[], None]
) -> bool:
    """A join runtime (beacon sockets, no pool runtime) until the certificate arrives."""
    import asyncio

    from manifests.pool import DiscoverySpec
    from reconciler.context import DeviceContext
    from reconciler.node import load_identity, load_node_config
    from reconciler.runtime.joinruntime import JoinRuntime

    ctx = DeviceContext(home, store, load_identity(home), load_node_config(home))
    runtime = JoinRuntime(ctx, member, DiscoverySpec())
    await runtime.start()
    started = time.monotonic()
    try:
        while not runtime.joined and (left := timeout - (time.monotonic() - started)) > 0:
            with contextlib.suppress(TimeoutError):  # an answer of the admin, or a tick
                await asyncio.wait_for(runtime.answered.wait(), min(TICK_SECONDS, left))
            runtime.answered.clear()
            tick()
    finally:
        await runtime.stop()
    return runtime.joined
