"""Go-style durations as people write them in manifests and flags: `5s`, `1m30s`, `24h`."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str | float | int) -> float:
    """Seconds in a duration such as `1h30m`, `500ms` or a bare number of seconds."""
    if isinstance(text, bool):
        raise ValueError("a duration is a number of seconds or a string like '5s'")
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        stripped = text.strip()
        pos, seconds = 0, 0.0
        for match in _PART.finditer(stripped):
            if match.start() != pos:
                break
            seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
            pos = match.end()
        if pos != len(stripped) or not stripped:
            raise ValueError(f"invalid duration {text!r}: use e.g. '500ms', '5s', '2m', '24h'")
    if seconds <= 0:
        raise ValueError("a duration must be greater than zero")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest usual spelling of a duration in seconds."""
    for unit in ("d", "h", "m", "s"):
        size = _UNIT_SECONDS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{round(seconds * 1000)}ms"


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
]
