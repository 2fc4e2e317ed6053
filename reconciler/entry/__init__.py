"""The composition root of the command line: meshctl's apps (meshctl/main.py,
meshctl/seed.py) plus what meshctl may not import itself (.importlinter): the agent's
own commands (reconciler/entry/commands.py) and the agent's code the CLI runs in its
process (reconciler/entry/side.py, provided through meshctl/ports.py). The console
scripts `meshctl` and `mesh` start here; so do `python -m reconciler.entry` (meshctl)
and `python -m reconciler.entry.mesh` (mesh).

Each app is composed when first used (``meshctl_app``, ``mesh_app``): `meshctl version`
imports neither mesh's commands nor anything heavy.
"""

from __future__ import annotations

from typing import Any

import typer

from meshctl import ports
from reconciler.entry.commands import add_mesh_commands, add_meshctl_commands
from reconciler.entry.side import InProcessSide

_composed: dict[str, typer.Typer] = {}


def compose_meshctl() -> typer.Typer:
    """meshctl's app with the agent's commands (agent, relay, control-plane, dashboard)."""
    if "meshctl" not in _composed:
        from meshctl.main import app

        ports.provide(InProcessSide())
        add_meshctl_commands(app)
        _composed["meshctl"] = app
    return _composed["meshctl"]


def compose_mesh() -> typer.Typer:
    """mesh's app with `mesh start`."""
    if "mesh" not in _composed:
        from meshctl.seed import app

        ports.provide(InProcessSide())
        add_mesh_commands(app)
        _composed["mesh"] = app
    return _composed["mesh"]


def __getattr__(name: str) -> Any:
    if name == "meshctl_app":
        return compose_meshctl()
    if name == "mesh_app":
        return compose_mesh()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _run(compose: Any, prog_name: str) -> None:
    try:
        app = compose()
    except KeyboardInterrupt:  # Ctrl+C while still importing: quiet, as a shell expects
        raise SystemExit(130) from None
    app(prog_name=prog_name)


def meshctl() -> None:
    """`meshctl`: the declarative API."""
    _run(compose_meshctl, "meshctl")


def mesh() -> None:
    """`mesh`: the quick start's verbs."""
    _run(compose_mesh, "mesh")
