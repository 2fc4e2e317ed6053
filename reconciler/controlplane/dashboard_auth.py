"""Who may see the dashboard and /metrics: ``require_viewer``.

A viewer is whoever the OpenAI-compatible API accepts (``apiauth.require_client``): a
pool member (its verified TLS client certificate) or an API key
(``Authorization: Bearer ...``, from this device unless the control plane runs with
``--api-lan``). Refusals answer in the control plane's own error body.

A viewer sees one pool (the credential's), or every served pool when the credential
names none (an API key made without ``--pool``).
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import HTTPException, Request

from reconciler.controlplane.apiauth import require_client
from reconciler.controlplane.apierrors import ApiError
from reconciler.controlplane.state import AppState


@dataclass(frozen=True)
class Viewer:
    """An authenticated dashboard client and the pool it may see (None: every pool)."""

    pool: str | None

    def pools(self, state: AppState) -> list[str]:
        names = [p.name for p in state.pools]
        return names if self.pool is None else [n for n in names if n == self.pool]


async def require_viewer(request: Request) -> Viewer:
    """The calling viewer; HTTPException 401/403 otherwise."""
    try:
        client = await require_client(request)
    except ApiError as err:
        raise HTTPException(err.status, err.message) from err
    return Viewer(client.pool)
