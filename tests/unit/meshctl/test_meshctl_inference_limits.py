"""`mesh inference --local` refuses a prompt beyond the model's context before loading
any weight, and sizes the KV cache to the job (on a pool, the agent refuses it:
tests/unit/runtime/test_jobrunner_limits.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from reconciler.entry import localengine, mesh_app
from reconciler.home import Home
from reconciler.inference.model import Engine

MODEL = str(Path(__file__).resolve().parents[2] / "fixtures" / "models" / "tiny-llama.gguf")
LONG = "hello world " * 30
runner = CliRunner()


def _local(prompt: str, max_tokens: int) -> Any:
    args = ["inference", "--local", "--model", MODEL, "--prompt", prompt,
            "--max-tokens", str(max_tokens), "-o", "json"]  # fmt: skip
    return runner.invoke(mesh_app, args)


def test_local_refuses_a_too_long_prompt_without_loading(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_load(*args: Any, **kw: Any) -> None:
        raise AssertionError("weights were loaded for a refused prompt")

    monkeypatch.setattr(localengine, "load_shard", no_load)
    result = _local(LONG, 200)
    assert result.exit_code != 0
    assert "context of 256" in result.stderr and "maxTokens 200" in result.stderr


def test_local_kv_cache_is_prompt_plus_max_tokens(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes: list[int] = []

    class Watched(Engine):
        def __init__(self, *args: Any, **kw: Any) -> None:
            super().__init__(*args, **kw)
            sizes.append(self.cache_len)

    monkeypatch.setattr(localengine, "Engine", Watched)
    result = _local("hello", 3)
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert sizes == [doc["promptTokens"] + 3]
