"""Errors raised while loading manifests.

ManifestError            one error for a whole load, listing every problem
  .problems: [Problem]   each with file, line, column, field path and message
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong in one place of one file (line and column count from 1)."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where} {self.path}: {self.message}" if self.path else f"{where} {self.message}"


class ManifestError(Exception):
    """Every problem found in a load; nothing from an invalid load may be applied."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))
