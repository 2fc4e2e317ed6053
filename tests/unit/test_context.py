"""The device context: the node ID is the identity's, memory is the Member's override
or the machine's total, and a device always offers at least one core."""

from __future__ import annotations

import os

import psutil
import pytest

from reconciler.certs.identity import NodeIdentity
from reconciler.context import DeviceContext, cores, memory_bytes
from reconciler.home import Home
from reconciler.node import init_node, load_identity
from reconciler.store import Store


def test_the_context_names_the_device_by_its_identity(home: Home) -> None:
    config = init_node(home, "net", "box")
    identity = load_identity(home)
    with Store.open(home.root) as store:
        ctx = DeviceContext(home, store, identity, config)
        assert ctx.node_id == identity.node_id == config.node_id
    other = NodeIdentity(os.urandom(32))
    assert DeviceContext(home, store, other, config).node_id == other.node_id


def test_memory_is_the_override_else_the_machines_total() -> None:
    total = int(psutil.virtual_memory().total)
    assert memory_bytes(3 * 2**30) == 3 * 2**30
    assert memory_bytes(None) == total
    assert memory_bytes(0) == total  # 0 means "not set", never "no memory"


def test_cores_is_at_least_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert cores() == 1
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert cores() == 6
