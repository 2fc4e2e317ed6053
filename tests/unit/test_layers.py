"""The layering rules of DESIGN.md, enforced on the source tree.

- manifests imports nothing else of the project;
- sans-IO protocol packages do no I/O: no sockets, event loops, threads, processes,
  wall clocks or sleeps (the clock and randomness are passed in).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ("manifests", "meshctl", "reconciler")
SANS_IO = ("reconciler/certs", "reconciler/beacon", "reconciler/gossip", "reconciler/controllers")
IO_MODULES = {"asyncio", "socket", "selectors", "ssl", "threading", "subprocess", "time", "uvloop"}
IO_EXEMPT = {"reconciler/certs/files.py"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", _files("manifests"), ids=lambda p: p.name)
def test_manifests_import_nothing_of_the_project(path: Path) -> None:
    project = {
        m for m in _imports(path) if m.split(".")[0] in PROJECT and m.split(".")[0] != "manifests"
    }
    assert project == set(), f"{path} imports {project}"


@pytest.mark.parametrize(
    "path",
    [p for pkg in SANS_IO for p in _files(pkg) if str(p.relative_to(ROOT)) not in IO_EXEMPT],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_sans_io_packages_do_no_io(path: Path) -> None:
    bad = {m for m in _imports(path) if m.split(".")[0] in IO_MODULES}
    assert bad == set(), f"{path} imports {bad}"


def test_the_rules_see_real_files() -> None:
    assert len(_files("manifests")) >= 5
    assert _files("reconciler/controllers")
