"""What every runtime of one agent shares: the device's home, store and identity."""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass

import psutil

from manifests.fields import positive_size
from reconciler.certs.identity import NodeIdentity
from reconciler.home import Home
from reconciler.node import NodeConfig
from reconciler.store import Store

log = logging.getLogger("meshnet.agent")


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


MEMORY_OFFER_ENV = "MESHNET_MEMORY_OFFER"  # a size; where no Member object says (the admin)


def memory_offer_setting() -> int | None:
    """``MESHNET_MEMORY_OFFER`` as a positive size (bytes, or ``8GiB``, ``512MiB``,
    ``1.5GB``), else None (unset, or not a positive size: logged, as the agent keeps
    running without an offer)."""
    return _offer(os.environ.get(MEMORY_OFFER_ENV, "").strip())


@functools.cache
def _offer(value: str) -> int | None:  # cached: a bad value is logged once
    size = positive_size(value) if value else None
    if value and size is None:
        log.warning("%s=%r is not a positive size (e.g. 8GiB): ignored", MEMORY_OFFER_ENV, value)
    return size


def memory_bytes(override: int | None = None) -> int:
    """Memory this device offers: the override, else the machine's total."""
    return override if override else int(psutil.virtual_memory().total)


def cores() -> int:
    return os.cpu_count() or 1
