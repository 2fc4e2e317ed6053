"""Typed, bounds-checked reads from a decoded JSON document.

Every getter raises :class:`JobProtocolError` (and nothing else) when the value is
missing, of the wrong type or out of range; ``bool`` never passes for a number.
"""

from __future__ import annotations

import math
from typing import Any

from reconciler.jobs.errors import JobProtocolError

Key = str | int | None  # dict key, list index, or None for the value itself
MAX_TEXT = 4096


class Fields:
    """A JSON value (object, array or scalar) read through typed getters."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def text(self, key: Key, max_len: int = MAX_TEXT) -> str:
        v = self._get(key)
        if not isinstance(v, str) or len(v) > max_len:
            raise JobProtocolError(f"{key!r} must be a string of at most {max_len} characters")
        return v

    def integer(self, key: Key, lo: int = 0, hi: int = 2**63 - 1) -> int:
        v = self._get(key)
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise JobProtocolError(f"{key!r} must be an integer in [{lo}, {hi}]")
        return v

    def number(self, key: Key, lo: float = 0.0, hi: float = math.inf) -> float:
        v = self._get(key)
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise JobProtocolError(f"{key!r} must be a number")
        if not math.isfinite(v) or not lo <= v <= hi:
            raise JobProtocolError(f"{key!r} must be finite and in [{lo}, {hi}]")
        return float(v)

    def flag(self, key: Key) -> bool:
        v = self._get(key)
        if not isinstance(v, bool):
            raise JobProtocolError(f"{key!r} must be true or false")
        return v

    def sub(self, key: Key) -> Fields:
        v = self._get(key)
        if not isinstance(v, dict):
            raise JobProtocolError(f"{key!r} must be an object")
        return Fields(v)

    def items(self, key: Key, lo: int, hi: int) -> list[Fields]:
        v = self._get(key)
        if not isinstance(v, list) or not lo <= len(v) <= hi:
            raise JobProtocolError(f"{key!r} must be a list of {lo} to {hi} items")
        return [Fields(item) for item in v]

    def integers(self, key: Key, lo: int, hi: int, max_items: int = 1 << 20) -> list[int]:
        return [item.integer(None, lo, hi) for item in self.items(key, 0, max_items)]

    def _get(self, key: Key) -> Any:
        v = self.value
        if key is None:
            return v
        if isinstance(key, int):
            if not isinstance(v, list) or not 0 <= key < len(v):
                raise JobProtocolError(f"item {key} is missing")
            return v[key]
        if not isinstance(v, dict) or key not in v:
            raise JobProtocolError(f"field {key!r} is missing")
        return v[key]
