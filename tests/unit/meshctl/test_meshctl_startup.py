"""Short commands import only what they use (startup is nearly all imports; the times
themselves are measured by bench/cli_startup.py, not asserted here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.home import Home

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "01-single-device" / "pool.yaml"
HEAVY = ("numpy", "fastapi", "uvicorn", "cryptography", "nacl", "httpx", "ruamel.yaml", "yaml",
         "gguf", "tokenizers", "reconciler.daemon", "reconciler.inference")  # fmt: skip
# Not needed to parse options (typer's pydantic coercion, meshctl/plainparams.py) nor to
# print a table of stored objects (the documents are read without the models).
NO_PYDANTIC = ("pydantic", "pydantic_core", "typer._adapters", "manifests.base", "manifests.objects")


def modules_after(args: list[str], home: Home) -> set[str]:
    """The modules loaded once `meshctl ARGS` has run, in a fresh interpreter."""
    script = (
        "import sys, json\n"
        "from reconciler.entry import meshctl_app as app\n"
        "try:\n"
        f"    app(args={args!r}, prog_name='meshctl')\n"
        "except SystemExit as end:\n"
        "    assert not end.code, end.code\n"
        "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "MESHNET_HOME": str(home.root)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, cwd=home.root.parent, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


def heavy_in(modules: set[str]) -> list[str]:
    return [m for m in modules if m in HEAVY or m.startswith(tuple(h + "." for h in HEAVY))]


@pytest.mark.parametrize("args", [["version"], ["version", "-o", "json"]])
def test_version_imports_nothing_heavy(args: list[str], home: Home) -> None:
    modules = modules_after(args, home)
    assert heavy_in(modules) == []
    assert "manifests" not in modules and "rich.table" not in modules
    assert [m for m in NO_PYDANTIC if m in modules] == []


@pytest.mark.parametrize(
    "args", [["get", "pools"], ["get", "jobs", "-o", "wide"], ["get", "members"], ["get", "peers"],
             ["get", "po", "test-pool"], ["--home", "HOME", "get", "jobs"]],
)  # fmt: skip
def test_get_imports_nothing_heavy(args: list[str], home: Home) -> None:
    subprocess.run([sys.executable, "-m", "reconciler.entry", "init", "--name", "dev"], check=True,
                   capture_output=True, env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO)  # fmt: skip
    subprocess.run([sys.executable, "-m", "reconciler.entry", "apply", "-f", str(EXAMPLE)], check=True,
                   capture_output=True, env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO)  # fmt: skip
    args = [str(home.root) if arg == "HOME" else arg for arg in args]
    modules = modules_after(args, home)
    assert "meshctl.objects_cmd" in modules  # the command did run
    assert heavy_in(modules) == []
    assert [m for m in NO_PYDANTIC if m in modules] == []


def test_get_as_json_still_validates_through_the_models(home: Home) -> None:
    subprocess.run([sys.executable, "-m", "reconciler.entry", "init", "--name", "dev"], check=True,
                   capture_output=True, env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO)  # fmt: skip
    subprocess.run([sys.executable, "-m", "reconciler.entry", "apply", "-f", str(EXAMPLE)], check=True,
                   capture_output=True, env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO)  # fmt: skip
    modules = modules_after(["get", "pools", "-o", "json"], home)
    assert "manifests.pool" in modules


def test_a_group_with_one_subcommand_keeps_its_subcommand(tmp_path: Path) -> None:
    """`meshctl member` has one subcommand; loaded lazily it must still be `member revoke`."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    run = subprocess.run(
        [sys.executable, "-m", "reconciler.entry", "member", "revoke", "nobody"],
        capture_output=True, text=True, env={**os.environ, "MESHNET_HOME": str(home)},
    )
    assert run.returncode == 1, run.stderr
    assert "no Member named 'nobody'" in run.stdout + run.stderr
