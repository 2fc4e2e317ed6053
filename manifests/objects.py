"""The kinds, their aliases, and the union of every object."""

from __future__ import annotations

from typing import TypeAlias

from manifests.job import Job
from manifests.member import Member
from manifests.pool import Pool

MeshObject: TypeAlias = Pool | Member | Job

KINDS: dict[str, type[MeshObject]] = {"Pool": Pool, "Member": Member, "Job": Job}

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


def model_for(kind: str) -> type[MeshObject]:
    """The pydantic model of a canonical kind."""
    return KINDS[kind]


def to_document(obj: MeshObject) -> dict[str, object]:
    """An object as the JSON/YAML document users see (camelCase, no nulls)."""
    return obj.model_dump(mode="json", by_alias=True, exclude_none=True)
