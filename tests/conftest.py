"""Fixtures shared by every test: a private MESHNET_HOME per test."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.home import Home

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def beacons_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Network safety: in the default namespace every beacon stays on loopback (TTL 0),
    on a port of its own. Namespace tests set their own environment per device."""
    monkeypatch.setenv("MESHNET_BEACON_INTERFACE", "127.0.0.1")
    monkeypatch.setenv("MESHNET_BEACON_PORT", str(45000 + secrets.randbelow(5000)))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Home]:
    """An empty device home, also exported as MESHNET_HOME."""
    root = tmp_path / "meshnet-home"
    monkeypatch.setenv("MESHNET_HOME", str(root))
    yield Home(root)
