"""The layering rules of DESIGN.md, enforced on the source tree.

- every contract of ``.importlinter`` holds (manifests imports nothing of the project;
  the control plane and the runtime do not import each other; sans-IO modules, the
  engine and the drivers stay in their layer; no import cycles). import-linter follows
  imports through any chain; tests/run.sh runs the same check as ``lint-imports``;
- the sans-IO modules that contract lists (protocol machines, codecs, controllers,
  planners) do not even name an I/O module, in any import, inside functions included;
- meshctl reaches the agent's internals (runtime, drivers, engine, job protocol,
  daemon) from no module that does not already do so, and reaches no more of them:
  each of those imports is to be replaced by the agent's local API.
"""

from __future__ import annotations

import ast
import configparser
from pathlib import Path

import grimp
import pytest
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / ".importlinter"
IO_MODULES = {
    "asyncio", "fastapi", "httpx", "selectors", "socket", "sqlite3", "ssl", "subprocess",
    "threading", "time", "uvloop",
}  # fmt: skip
AGENT = (
    "reconciler.daemon",
    "reconciler.drivers",
    "reconciler.inference",
    "reconciler.jobs",
    "reconciler.runtime",
)
# What each meshctl module reaches of AGENT today, through any chain of imports. It may
# only shrink (the agent's local API replaces these); the CLI contract of DESIGN.md
# ("meshctl imports no runtime, drivers, engine or daemon") joins .importlinter once
# this is empty.
CLI_REACH_TODAY: dict[str, set[str]] = {
    "meshctl.chat_cmd": {"reconciler.inference", "reconciler.jobs"},
    "meshctl.dashboard_cmd": {"reconciler.drivers", "reconciler.inference", "reconciler.jobs"},
    "meshctl.demo": set(AGENT) - {"reconciler.daemon"},
    "meshctl.doctor": {"reconciler.drivers", "reconciler.runtime"},
    "meshctl.doctor_checks": {"reconciler.drivers", "reconciler.runtime"},
    "meshctl.inference_cmd": {"reconciler.inference", "reconciler.jobs"},
    "meshctl.jobs_cmd": {"reconciler.inference", "reconciler.jobs"},
    "meshctl.join_cmd": {"reconciler.drivers", "reconciler.runtime"},
    "meshctl.local_inference": {"reconciler.inference", "reconciler.jobs"},
    "meshctl.main": set(AGENT),
    "meshctl.poolinfo_cmd": {"reconciler.drivers"},
    "meshctl.seed": set(AGENT),
}


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


def test_every_import_linter_contract_holds(capsys: pytest.CaptureFixture[str]) -> None:
    status = lint_imports(config_filename=str(CONFIG), no_cache=True, no_logo=True)
    report = capsys.readouterr().out
    assert status == 0, report
    assert "0 broken" in report


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


def test_meshctl_reaches_no_more_of_the_agent_than_today() -> None:
    graph = grimp.build_graph("manifests", "meshctl", "reconciler", cache_dir=None)
    grown: dict[str, set[str]] = {}
    for module in sorted(m for m in graph.modules if m.startswith("meshctl")):
        upstream = graph.find_upstream_modules(module)
        reached = {a for a in AGENT for u in upstream if u == a or u.startswith(a + ".")}
        extra = reached - CLI_REACH_TODAY.get(module, set())
        if extra:
            grown[module] = extra
    assert grown == {}, f"meshctl modules newly reaching agent internals: {grown}"
