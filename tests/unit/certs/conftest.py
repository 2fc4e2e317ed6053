"""Fixtures for the certificate tests: a deterministic pool root and identities."""

from __future__ import annotations

import pytest

from reconciler.certs.identity import NodeIdentity
from reconciler.certs.root import PoolRoot, create_pool_root

NOW = 1_750_000_000.0


@pytest.fixture()
def now() -> float:
    return NOW


@pytest.fixture()
def root() -> PoolRoot:
    return create_pool_root(b"\x01" * 32, "home", NOW)


@pytest.fixture()
def other_root() -> PoolRoot:
    return create_pool_root(b"\x02" * 32, "neighbour", NOW)


@pytest.fixture()
def alice() -> NodeIdentity:
    return NodeIdentity(b"\x0a" * 32)
