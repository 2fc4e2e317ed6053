"""Load YAML manifests into objects, with every problem located by file:line:column.

A round-trip YAML parser keeps where each key stands, so a pydantic error's field path
(`spec.discovery.port`) maps back to the line a person wrote.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from manifests.base import API_VERSION
from manifests.errors import ManifestError, Problem
from manifests.objects import KINDS, MeshObject

YAML_SUFFIXES = (".yaml", ".yml")
# Parser contexts whose mark is where an unclosed construct was opened.
STARTED_CONTEXTS = ("while parsing a flow", "while scanning a quoted")

HINTS = {
    ("Member", "spec.token"): (
        " (a token is never kept in a manifest: put it in a file and name the file in tokenFile)"
    ),
}


@dataclass(frozen=True)
class LoadedObject:
    """An object and where it came from."""

    obj: MeshObject
    source: str
    line: int


def manifest_files(path: Path) -> list[Path]:
    """The YAML files named by a path: the file itself, or a folder's *.yaml sorted."""
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in YAML_SUFFIXES and p.is_file())
    return [path]


def load_manifests(path: str | Path) -> list[LoadedObject]:
    """Every object in a file, a folder of files, or `-` (standard input)."""
    if str(path) == "-":
        return load_text(sys.stdin.read(), "<stdin>")
    target = Path(path)
    if not target.exists():
        raise ManifestError([Problem(str(target), 0, 0, "", "no such file or directory")])
    loaded: list[LoadedObject] = []
    problems: list[Problem] = []
    for file in manifest_files(target):
        try:
            loaded.extend(load_file(file))
        except ManifestError as err:
            problems.extend(err.problems)
    if problems:
        raise ManifestError(problems)
    _check_unique(loaded)
    return loaded


def load_file(file: Path) -> list[LoadedObject]:
    """Every object in one YAML file."""
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ManifestError([Problem(str(file), 0, 0, "", f"cannot read: {err}")]) from err
    return load_text(text, str(file))


def load_text(text: str, source: str) -> list[LoadedObject]:
    """Every object in a YAML text; raises ManifestError listing every problem."""
    loaded: list[LoadedObject] = []
    problems: list[Problem] = []
    for doc in _documents(text, source):
        line = doc.lc.line + 1
        try:
            loaded.append(LoadedObject(_validate(doc, source), source, line))
        except ManifestError as err:
            problems.extend(err.problems)
    if problems:
        raise ManifestError(problems)
    _check_unique(loaded)
    return loaded


def _documents(text: str, source: str) -> Iterator[CommentedMap]:
    yaml = YAML(typ="rt")
    try:
        docs = list(yaml.load_all(text))
    except MarkedYAMLError as err:
        raise ManifestError([_yaml_problem(err, source)]) from err
    except YAMLError as err:
        raise ManifestError([Problem(source, 0, 0, "", f"invalid YAML: {err}")]) from err
    except (TypeError, ValueError, RecursionError) as err:  # e.g. a mapping as a key
        problem = "nested too deeply" if isinstance(err, RecursionError) else str(err)
        raise ManifestError([Problem(source, 0, 0, "", f"invalid YAML: {problem}")]) from err
    for index, doc in enumerate(docs):
        if doc is None:
            continue
        if not isinstance(doc, CommentedMap):
            message = f"document {index + 1} is not a mapping of apiVersion, kind, metadata, spec"
            raise ManifestError([Problem(source, 1, 1, "", message)])
        yield doc


def _yaml_problem(err: MarkedYAMLError, source: str) -> Problem:
    """Where the broken construct starts (an unclosed `[`, `{` or quote: the parser's
    context mark), and where the parser gave up; else where it gave up."""
    problem, context = err.problem_mark, err.context_mark
    opened = bool(err.context) and str(err.context).startswith(STARTED_CONTEXTS)
    if context is not None and (problem is None or opened):
        thing = str(err.context).removeprefix("while parsing a ").removeprefix("while scanning a ")
        gave_up = "" if problem is None else f" at line {problem.line + 1}, column {problem.column + 1}"
        message = f"invalid YAML: the {thing} that starts here is never closed ({err.problem}{gave_up})"
        return Problem(source, context.line + 1, context.column + 1, "", message)
    if problem is None:
        return Problem(source, 0, 0, "", f"invalid YAML: {err.problem}")
    return Problem(source, problem.line + 1, problem.column + 1, "", f"invalid YAML: {err.problem}")


def _validate(doc: CommentedMap, source: str) -> MeshObject:
    line, col = doc.lc.line + 1, doc.lc.col + 1
    api_version = doc.get("apiVersion")
    if api_version != API_VERSION:
        at_line, at_col = _key_position(doc, "apiVersion") or (line, col)
        message = f"must be {API_VERSION!r}, got {api_version!r}"
        raise ManifestError([Problem(source, at_line, at_col, "apiVersion", message)])
    kind = doc.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        at_line, at_col = _key_position(doc, "kind") or (line, col)
        message = f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}"
        raise ManifestError([Problem(source, at_line, at_col, "kind", message)])
    try:
        return KINDS[kind].model_validate(_plain(doc))
    except ValidationError as err:
        raise ManifestError(_problems(err, doc, source)) from err


def _problems(err: ValidationError, doc: CommentedMap, source: str) -> list[Problem]:
    problems = []
    for item in err.errors(include_url=False):
        loc = tuple(
            p for p in item["loc"] if not (isinstance(p, str) and p.startswith("function-"))
        )
        line, col = _locate(doc, loc)
        message = item["msg"].removeprefix("Value error, ")
        message += HINTS.get((doc.get("kind"), format_path(loc)), "")
        problems.append(Problem(source, line, col, format_path(loc), message))
    return sorted(problems, key=lambda p: (p.line, p.column))


def format_path(loc: tuple[int | str, ...]) -> str:
    """`("spec", "staticPeers", 0)` -> `spec.staticPeers[0]`."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _locate(doc: CommentedMap, loc: tuple[int | str, ...]) -> tuple[int, int]:
    """Line and column of the deepest node of `loc` present in the document."""
    node: Any = doc
    best = (doc.lc.line + 1, doc.lc.col + 1)
    for part in loc:
        position = _key_position(node, part)
        if position is None:
            break
        best = position
        node = node[part]
    return best


def _key_position(node: Any, key: int | str) -> tuple[int, int] | None:
    if isinstance(node, CommentedMap) and isinstance(key, str) and key in node:
        line, col = node.lc.key(key)
        return line + 1, col + 1
    if isinstance(node, CommentedSeq) and isinstance(key, int) and 0 <= key < len(node):
        line, col = node.lc.item(key)
        return line + 1, col + 1
    return None


def _plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def _check_unique(loaded: list[LoadedObject]) -> None:
    seen: dict[tuple[str, str], LoadedObject] = {}
    problems = []
    for item in loaded:
        key = (item.obj.kind, item.obj.metadata.name)
        if key in seen:
            first = seen[key]
            message = f"{key[0]} {key[1]!r} is defined twice (first at {first.source}:{first.line})"
            problems.append(Problem(item.source, item.line, 1, "metadata.name", message))
        seen[key] = item
    if problems:
        raise ManifestError(problems)
