"""Chat templates rendered as transformers renders them.

transformers compiles a model's Jinja chat template in an
``ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)`` with the
``loopcontrols`` extension (``{% break %}`` / ``{% continue %}``), a ``tojson`` filter
that does not escape HTML and takes ``ensure_ascii``, ``indent``, ``separators`` and
``sort_keys``, and the globals ``raise_exception(message)`` and ``strftime_now(format)``.
Templates written for it (Llama 3.x, Qwen, Gemma, SmolLM) need all of these.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

import jinja2
import jinja2.ext
import jinja2.sandbox

Clock = Callable[[], datetime]


class ChatTemplateError(ValueError):
    """The template is invalid, or raised an error for these messages."""


def _raise_exception(message: str) -> None:
    raise jinja2.TemplateError(message)


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _environment(clock: Clock) -> jinja2.sandbox.ImmutableSandboxedEnvironment:
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = lambda fmt: clock().strftime(fmt)
    return env


@lru_cache(maxsize=16)
def _compiled(source: str) -> jinja2.Template:
    return _environment(datetime.now).from_string(source)


def render_chat(
    source: str,
    messages: Sequence[Mapping[str, Any]],
    add_generation_prompt: bool = True,
    special: Mapping[str, str] | None = None,
    clock: Clock | None = None,
    **extra: Any,
) -> str:
    """The prompt text of ``messages`` (ChatTemplateError on a bad template)."""
    try:
        template = _compiled(source) if clock is None else _environment(clock).from_string(source)
        return template.render(
            messages=[dict(m) for m in messages],
            add_generation_prompt=add_generation_prompt,
            **(special or {}),
            **extra,
        )
    except jinja2.TemplateError as err:
        raise ChatTemplateError(f"chat template: {err}") from err
