"""Console-script entry points. Ctrl+C while a command is still importing ends quietly
(exit 130, as a shell expects) instead of printing a KeyboardInterrupt traceback."""

from __future__ import annotations

import importlib


def _run(module: str, prog_name: str) -> None:
    try:
        app = importlib.import_module(module).app
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    app(prog_name=prog_name)


def meshctl() -> None:
    """`meshctl`: the declarative API."""
    _run("meshctl.main", "meshctl")


def mesh() -> None:
    """`mesh`: the quick start's verbs."""
    _run("meshctl.seed", "mesh")
