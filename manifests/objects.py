"""The kinds, their aliases, and the union of every object."""

from __future__ import annotations

from typing import TypeAlias

from manifests.job import Job
from manifests.kinds import UnknownKindError, resolve_kind
from manifests.member import Member
from manifests.pool import Pool

MeshObject: TypeAlias = Pool | Member | Job

KINDS: dict[str, type[MeshObject]] = {"Pool": Pool, "Member": Member, "Job": Job}

__all__ = ["KINDS", "MeshObject", "UnknownKindError", "model_for", "resolve_kind", "to_document"]


def model_for(kind: str) -> type[MeshObject]:
    """The pydantic model of a canonical kind."""
    return KINDS[kind]


def to_document(obj: MeshObject) -> dict[str, object]:
    """An object as the JSON/YAML document users see (camelCase, no nulls)."""
    return obj.model_dump(mode="json", by_alias=True, exclude_none=True)
