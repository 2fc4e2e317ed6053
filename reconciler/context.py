"""What every runtime of one agent shares: the device's home, store and identity."""

from __future__ import annotations

import os
from dataclasses import dataclass

import psutil

from reconciler.certs.identity import NodeIdentity
from reconciler.home import Home
from reconciler.node import NodeConfig
from reconciler.store import Store


@dataclass(frozen=True)
class DeviceContext:
    """This device, as the runtimes see it."""

    home: Home
    store: Store
    identity: NodeIdentity
    node: NodeConfig

    @property
    def node_id(self) -> str:
        return self.identity.node_id


def memory_bytes(override: int | None = None) -> int:
    """Memory this device offers: the override, else the machine's total."""
    return override if override else int(psutil.virtual_memory().total)


def cores() -> int:
    return os.cpu_count() or 1
