"""Kind names and their aliases (no pydantic: `meshctl get po` resolves without the models)."""

from __future__ import annotations

_ALIASES: dict[str, str] = {
    "pool": "Pool", "pools": "Pool", "po": "Pool",
    "member": "Member", "members": "Member", "mem": "Member", "mb": "Member",
    "job": "Job", "jobs": "Job",
}  # fmt: skip


class UnknownKindError(ValueError):
    """A kind name that is none of ours."""


def resolve_kind(name: str) -> str:
    """The canonical kind for a name or alias (`po`, `pools`, `Pool` -> `Pool`)."""
    kind = _ALIASES.get(name.lower())
    if kind is None:
        known = ", ".join(sorted(set(_ALIASES.values())))
        raise UnknownKindError(f"unknown kind {name!r} (known: {known}; aliases like 'po' work)")
    return kind
