"""Fixtures for the inference tests: paths of the committed tiny models and references."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

MODELS = Path(__file__).resolve().parents[2] / "fixtures" / "models"
TINY = ["tiny-llama.gguf", "tiny-llama-hf", "tiny-qwen2-hf"]


@pytest.fixture(scope="session")
def models_dir() -> Path:
    return MODELS


@pytest.fixture(scope="session")
def reference() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((MODELS / "reference.json").read_text())
    return data


@pytest.fixture(params=TINY)
def tiny_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)
