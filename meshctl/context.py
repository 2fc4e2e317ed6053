"""What every command shares: the device's home, its store, and error reporting."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import typer
from rich.markup import escape

from manifests import ManifestError
from manifests.objects import UnknownKindError
from meshctl.render import err_console
from reconciler.home import Home
from reconciler.node import NodeError
from reconciler.store import Store, StoreError

P = ParamSpec("P")
R = TypeVar("R")


class State:
    """Options given before the command (`meshctl --home DIR get pools`)."""

    home: Home = Home.default()


def home() -> Home:
    return State.home


def open_store() -> Store:
    return Store.open(State.home.root)


class CliError(Exception):
    """An error to show the user as `error: ...` with an exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    return typer.Exit(code)


def friendly(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn the errors users cause into one clear message and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except ManifestError as err:
            for problem in err.problems:
                err_console.print(f"[red]error:[/red] {escape(str(problem))}", highlight=False)
            raise typer.Exit(1) from err
        except CliError as err:
            raise fail(str(err), err.code) from err
        except (StoreError, NodeError, UnknownKindError) as err:
            raise fail(str(err)) from err

    return wrapper


def option_output(default: str = "table") -> Any:
    return typer.Option(default, "-o", "--output", help="table, wide, yaml or json.")


def new_app(name: str, help_text: str) -> typer.Typer:
    """A command-line app with meshnet's settings (-h, no completion noise, plain errors)."""
    return typer.Typer(
        name=name,
        help=help_text,
        no_args_is_help=True,
        rich_markup_mode="rich",
        pretty_exceptions_enable=False,
        add_completion=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
