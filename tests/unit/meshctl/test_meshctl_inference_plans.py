"""`mesh inference --parallelism/--wire/--draft-tokens`: what the pooled Job asks for,
clear refusals, and speculative decoding that keeps the tokens (--local)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from meshctl.inference_cmd import job_document
from reconciler.entry import mesh_app
from reconciler.home import Home

MODEL = str(Path(__file__).resolve().parents[2] / "fixtures" / "models" / "tiny-llama.gguf")
runner = CliRunner()
BASE = {"prompt": "hi", "max_tokens": 4, "model": "demo", "temperature": 0.0, "seed": None,
        "chat": False}  # fmt: skip


def test_the_job_carries_the_plan_options() -> None:
    args = {**BASE, "parallelism": "pipeline", "wire": "q80", "draft_tokens": 4}
    spec = job_document("j", "p", args).spec
    assert (spec.parallelism, spec.wire, spec.draft_tokens) == ("pipeline", "q80", 4)
    plain = job_document("j", "p", {**BASE, "parallelism": "auto", "wire": "auto"}).spec
    assert (plain.parallelism, plain.wire, plain.draft_tokens) == ("auto", "auto", 0)


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--parallelism", "ring"], "--parallelism must be auto, tensor, pipeline or single"),
        (["--wire", "int4"], "--wire must be auto, f32 or q80"),
        (["--local", "--parallelism", "tensor"], "not with --local"),
        (["--draft-tokens", "17"], "less than or equal to 16"),
    ],
)
def test_bad_plan_options_are_refused_clearly(home: Home, extra: list[str], says: str) -> None:
    result = runner.invoke(mesh_app, ["inference", "--prompt", "hi", *extra])
    assert result.exit_code != 0 and says in result.stderr, result.stderr


def _local(*extra: str) -> Any:
    args = ["inference", "--local", "--model", MODEL, "--prompt", "one two three one two three one",
            "--max-tokens", "10", "-o", "json", *extra]  # fmt: skip
    result = runner.invoke(mesh_app, args)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_draft_tokens_keep_the_greedy_tokens(home: Home) -> None:
    assert _local("--draft-tokens", "4")["tokenIds"] == _local()["tokenIds"]
