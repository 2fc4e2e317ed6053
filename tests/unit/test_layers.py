"""The layering rules of DESIGN.md, enforced on the source tree.

- every contract of ``.importlinter`` holds (manifests imports nothing of the project;
  the control plane and the runtime do not import each other; sans-IO modules, the
  engine and the drivers stay in their layer; no import cycles). import-linter follows
  imports through any chain; tests/run.sh runs the same check as ``lint-imports``;
- the sans-IO modules that contract lists (protocol machines, codecs, controllers,
  planners) do not even name an I/O module, in any import, inside functions included;
- meshctl imports no runtime, drivers, engine or daemon (the ``cli`` contract): it
  reaches a running agent through the local API's client, and the agent's code it runs
  in its own process through meshctl/ports.py, provided by reconciler.entry. A module
  of meshctl that imports the agent breaks the run (checked on a copy of the tree).
"""

from __future__ import annotations

import ast
import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / ".importlinter"
IO_MODULES = {
    "asyncio", "fastapi", "httpx", "selectors", "socket", "sqlite3", "ssl", "subprocess",
    "threading", "time", "uvloop",
}  # fmt: skip
CLI_MUST_NOT_REACH = (  # issue 13: "meshctl imports no runtime, drivers, engine or daemon"
    "reconciler.runtime",
    "reconciler.drivers",
    "reconciler.inference",
    "reconciler.daemon",
    "reconciler.jobs",
    "reconciler.executor",
)


def _contract_modules(contract: str, key: str) -> list[str]:
    config = configparser.ConfigParser()
    config.read(CONFIG)
    return config[f"importlinter:contract:{contract}"][key].split()


def _module_files(module: str) -> list[Path]:
    base = ROOT.joinpath(*module.split("."))
    if base.is_dir():
        return sorted(base.rglob("*.py"))
    path = base.with_suffix(".py")
    assert path.is_file(), f"{module} (listed in .importlinter) is not a module"
    return [path]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


SANS_IO_FILES = [
    path
    for module in _contract_modules("machines", "source_modules")
    for path in _module_files(module)
]


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """In a process of its own: import-linter configures logging as it runs."""
    config = root / ".importlinter"
    script = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(" \
        f"config_filename={str(config)!r}, no_cache=True, no_logo=True))"
    return subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(root)}, timeout=300)  # fmt: skip


def test_every_import_linter_contract_holds() -> None:
    done = _lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_the_cli_contract_forbids_the_agent_internals() -> None:
    forbidden = _contract_modules("cli", "forbidden_modules")
    assert _contract_modules("cli", "source_modules") == ["meshctl"]
    assert [m for m in CLI_MUST_NOT_REACH if m not in forbidden] == []


@pytest.mark.parametrize("imported", ["reconciler.runtime.joinruntime", "reconciler.oneshot"])
def test_a_cli_module_reaching_the_agent_breaks_the_contract(imported: str, tmp_path: Path) -> None:
    """On a copy of the tree with one more meshctl module: directly (the join runtime) or
    through a chain (one reconcile runs the executor)."""
    for package in ("manifests", "meshctl", "reconciler"):
        shutil.copytree(ROOT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.gguf", "dashboard_static"))  # fmt: skip
    shutil.copy(CONFIG, tmp_path / ".importlinter")
    (tmp_path / "meshctl" / "sneaky.py").write_text(f"import {imported}\n")
    done = _lint_imports(tmp_path)
    assert done.returncode != 0
    assert "meshctl imports no runtime" in done.stdout and "1 broken" in done.stdout
    assert "meshctl.sneaky -> " + imported in done.stdout


@pytest.mark.parametrize("path", SANS_IO_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_sans_io_modules_name_no_io_module(path: Path) -> None:
    bad = {m for m in _imports(path) if m.split(".")[0] in IO_MODULES}
    assert bad == set(), f"{path} imports {bad}"


def test_the_sans_io_rule_sees_the_protocol_packages() -> None:
    seen = {str(p.relative_to(ROOT)) for p in SANS_IO_FILES}
    for expected in (
        "reconciler/beacon/machine.py",
        "reconciler/gossip/machine.py",
        "reconciler/relay/core.py",
        "reconciler/jobs/messages.py",
        "reconciler/codec.py",
        "reconciler/controllers/job.py",
        "reconciler/placement/planner.py",
    ):
        assert expected in seen


def test_meshctl_reaches_none_of_the_agent() -> None:
    graph = grimp.build_graph("manifests", "meshctl", "reconciler", cache_dir=None)
    grown: dict[str, set[str]] = {}
    for module in sorted(m for m in graph.modules if m.startswith("meshctl")):
        upstream = graph.find_upstream_modules(module)
        reached = {a for a in CLI_MUST_NOT_REACH for u in upstream
                   if u == a or u.startswith(a + ".")}  # fmt: skip
        if reached:
            grown[module] = reached
    assert grown == {}, f"meshctl modules reaching agent internals: {grown}"
