"""Commands imported only when they run, so that `meshctl version` or `meshctl get`
does not pay for the imports of every other command (click's "lazy group" pattern).

A lazy table maps a command name to `"module:attribute"`: a command function (typer
options in its signature) or a `typer.Typer` of subcommands. `--help` loads them all.
"""

from __future__ import annotations

import importlib
from typing import Any, ClassVar

import typer
from typer.core import TyperGroup

from meshctl.plainparams import plain_coercion

LazyTable = dict[str, str]


class LazyGroup(TyperGroup):
    """A typer group that imports a lazy command's module on first use."""

    lazy: ClassVar[LazyTable] = {}

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        plain_coercion(self, ctx)  # its own options (--home) and the commands defined here
        return list(super().parse_args(ctx, args))

    def list_commands(self, ctx: Any) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in self.lazy:
            command = plain_coercion(load_command(cmd_name, self.lazy[cmd_name]), ctx)
            self.add_command(command, cmd_name)
        return command


def lazy_group(table: LazyTable) -> type[LazyGroup]:
    """A LazyGroup class that knows this table (typer instantiates the class itself)."""
    return type("LazyGroup", (LazyGroup,), {"lazy": dict(table)})


def load_command(name: str, target: str) -> Any:
    """The click command for `module:attribute` (a function or a typer.Typer)."""
    module_name, _, attribute = target.partition(":")
    obj = getattr(importlib.import_module(module_name), attribute)
    if isinstance(obj, typer.Typer):
        group = typer.main.get_group(obj)  # a group even with one subcommand (member revoke)
        group.name = name
        return group
    single = typer.Typer(rich_markup_mode="rich", pretty_exceptions_enable=False)
    single.command(name)(obj)
    return typer.main.get_command(single)
