"""What every command shares: the device's home, its store, and error reporting."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import typer

from meshctl.lazy import LazyTable, lazy_group
from reconciler.home import Home

if TYPE_CHECKING:  # imported when used: `meshctl version` should not pay for them
    from reconciler.store import Store

P = ParamSpec("P")
R = TypeVar("R")


class State:
    """Options given before the command (`meshctl --home DIR get pools`)."""

    home: Home = Home.default()


def home() -> Home:
    return State.home


def open_store() -> Store:
    from reconciler.store import Store

    return Store.open(State.home.root)


class CliError(Exception):
    """An error to show the user as `error: ...` with an exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def fail(message: str, code: int = 1) -> typer.Exit:
    from rich.markup import escape

    from meshctl.render import err_console

    err_console.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    return typer.Exit(code)


def user_errors() -> tuple[type[Exception], ...]:
    """The errors a user causes (bad manifests, store and identity problems)."""
    from manifests.errors import ManifestError
    from manifests.kinds import UnknownKindError
    from reconciler.node import NodeError
    from reconciler.store import StoreError

    return (ManifestError, CliError, StoreError, NodeError, UnknownKindError)


def friendly(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn the errors users cause into one clear message and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            if not isinstance(err, user_errors()):
                raise
            raise _report(err) from err

    return wrapper


def _report(err: Exception) -> typer.Exit:
    from manifests.errors import ManifestError

    if isinstance(err, ManifestError):
        from rich.markup import escape

        from meshctl.render import err_console

        for problem in err.problems:
            err_console.print(f"[red]error:[/red] {escape(str(problem))}", highlight=False)
        return typer.Exit(1)
    return fail(str(err), err.code if isinstance(err, CliError) else 1)


def option_output(default: str = "table") -> Any:
    return typer.Option(default, "-o", "--output", help="table, wide, yaml or json.")


def new_app(name: str, help_text: str, lazy: LazyTable | None = None) -> typer.Typer:
    """A command-line app with meshnet's settings (-h, no completion noise, plain errors);
    `lazy` names commands imported only when they run (see meshctl/lazy.py)."""
    return typer.Typer(
        name=name,
        cls=lazy_group(lazy or {}),
        help=help_text,
        no_args_is_help=True,
        rich_markup_mode="rich",
        pretty_exceptions_enable=False,
        add_completion=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
