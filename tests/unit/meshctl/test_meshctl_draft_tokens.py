"""`mesh inference --draft-tokens N`: the same answer in fewer passes (--local), and the
Job it submits to a pool asks for drafts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from meshctl.inference_cmd import job_document
from reconciler.entry import mesh_app
from reconciler.home import Home

MODEL = str(Path(__file__).resolve().parents[2] / "fixtures" / "models" / "tiny-llama-hf")
PROMPT = "one two three four one two three four one two"
runner = CliRunner()


def _local(*extra: str) -> Any:
    args = ["inference", "--local", "--model", MODEL, "--prompt", PROMPT, "--max-tokens", "40",
            "--kernels", "numpy", "-o", "json", *extra]  # fmt: skip
    return runner.invoke(mesh_app, args)


def test_local_drafts_give_the_same_tokens_in_fewer_passes(home: Home) -> None:
    plain, spec = _local(), _local("--draft-tokens", "8")
    assert plain.exit_code == 0 and spec.exit_code == 0, spec.stderr
    a, b = json.loads(plain.stdout), json.loads(spec.stdout)
    assert b["tokenIds"] == a["tokenIds"] and b["text"] == a["text"]
    assert "decodeRounds" not in a  # as a pool job's: only when drafts ran
    assert b["decodeRounds"] < 0.6 * len(b["tokenIds"])
    assert b["tokensPerRound"] == (len(b["tokenIds"]) - 1) / b["decodeRounds"]


def test_draft_tokens_out_of_range_are_refused(home: Home) -> None:
    result = _local("--draft-tokens", "17")
    assert result.exit_code != 0 and "--draft-tokens" in result.stderr


def test_the_pool_job_asks_for_drafts() -> None:
    args = {"model": "demo", "max_tokens": 8, "temperature": 0.0, "seed": None,
            "chat": False, "prompt": "hi", "draft_tokens": 8}  # fmt: skip
    assert job_document("j", "p", args).spec.draft_tokens == 8
    assert job_document("j", "p", {**args, "draft_tokens": 0}).spec.draft_tokens == 0
