"""Fixtures shared by every test: a private MESHNET_HOME per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.home import Home

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Home]:
    """An empty device home, also exported as MESHNET_HOME."""
    root = tmp_path / "meshnet-home"
    monkeypatch.setenv("MESHNET_HOME", str(root))
    yield Home(root)
