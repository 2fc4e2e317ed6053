"""Who may see the dashboard and /metrics: ``require_viewer``.

The one place to switch once the OpenAI API's ``apiauth.require_client`` (an API key,
``Authorization: Bearer ...``, or a member certificate) is merged: make
``require_viewer`` return ``Viewer(client.pool)`` from it. Until then a viewer is a
pool member (its verified TLS client certificate, as ``auth.require_member``).

A viewer sees one pool (the credential's), or every served pool when the credential
names none (an API key made without ``--pool``).
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from reconciler.controlplane.auth import require_member
from reconciler.controlplane.state import AppState


@dataclass(frozen=True)
class Viewer:
    """An authenticated dashboard client and the pool it may see (None: every pool)."""

    pool: str | None

    def pools(self, state: AppState) -> list[str]:
        names = [p.name for p in state.pools]
        return names if self.pool is None else [n for n in names if n == self.pool]


def require_viewer(request: Request) -> Viewer:
    """The calling viewer; HTTPException 401/403 otherwise."""
    caller = require_member(request)
    return Viewer(caller.pool.name)
