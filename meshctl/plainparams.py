"""Text and path options without pydantic: typer (0.29) coerces every value through a
pydantic TypeAdapter, whose import and build cost a short command like `meshctl get`
about 60 ms, more than the command itself. A `str` needs no validation and a `Path`
only `Path(value)` before typer's own checks (exists, dir_okay...), so those two get a
plain coercion, and a `bool` flag is already a bool; every other type (numbers with bounds, bools from text, choices)
keeps typer's. With a typer whose internals differ, everything is left to typer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    from typer._coercion import RuntimeParam, build_runtime_param, resolve_type_descriptor
    from typer._param_types import coerce_cli_path
    from typer.core import _TyperParameter
except ImportError:  # pragma: no cover - another typer: its own coercion applies
    RuntimeParam = None  # type: ignore[assignment,misc]


if RuntimeParam is not None:

    @dataclass(frozen=True)
    class PlainText(RuntimeParam):
        """A `str` option or argument: the text as given."""

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            return os.fsdecode(value) if isinstance(value, bytes) else str(value)

    @dataclass(frozen=True)
    class PlainFlag(RuntimeParam):
        """A `bool` flag: a bool as given; text (from an environment variable) is
        parsed by typer's own coercion."""

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            if isinstance(value, bool):
                return value
            descriptor = resolve_type_descriptor(self.annotation, self.parameter_info)
            return build_runtime_param(descriptor)._coerce_value(value, param, ctx)

    @dataclass(frozen=True)
    class PlainPath(RuntimeParam):
        """A `Path` option: `Path(text)`, then typer's checks of the path options."""

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            if isinstance(value, str):
                value = self.annotation(value)
            return coerce_cli_path(
                value, self.parameter_info, path_type=self.annotation, param=param, ctx=ctx
            )


def plain_coercion(command: Any, ctx: Any) -> Any:
    """Give the str, Path and bool parameters of `command` (its help option too, hence
    `ctx`) and of its subcommands, recursively, the plain coercion; returns `command`."""
    if RuntimeParam is None:  # pragma: no cover
        return command
    for param in command.get_params(ctx):
        if isinstance(param, _TyperParameter) and getattr(param, "_runtime_param", 0) is None:
            runtime = _plain_runtime(param)
            if runtime is not None:
                param._runtime_param = runtime
    for sub in getattr(command, "commands", {}).values():
        plain_coercion(sub, ctx)
    return command


def _plain_runtime(param: Any) -> Any:
    descriptor = param.type_descriptor
    info, annotation = descriptor.parameter_info, descriptor.annotation
    if info.parser is not None or descriptor.is_choice or descriptor.is_file:
        return None
    if annotation is bool:
        return PlainFlag(parameter_info=info, annotation=annotation)
    if annotation is str and not descriptor.is_path:
        return PlainText(parameter_info=info, annotation=annotation)
    path = isinstance(annotation, type) and issubclass(annotation, Path)
    if path and descriptor.is_path and info.path_type is None:
        return PlainPath(parameter_info=info, annotation=annotation)
    return None
