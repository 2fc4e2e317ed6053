"""meshnet's declarative API: Pool, Member and Job manifests.

Imports nothing else of the project; reads files and nothing more. Every name is
imported on first use (PEP 562): the pydantic models when a model is used, the YAML
loader (ruamel.yaml) on first use of `load_manifests`/`load_text`, so that a command
that only reads stored objects (`meshctl get`) pays for neither.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from manifests.base import API_VERSION, Condition, ObjectMeta
    from manifests.errors import ManifestError, Problem
    from manifests.job import Job
    from manifests.loader import LoadedObject, load_manifests, load_text
    from manifests.member import Member
    from manifests.objects import KINDS, MeshObject, model_for, resolve_kind, to_document
    from manifests.pool import Pool

_HOME = {
    "API_VERSION": "base", "Condition": "base", "ObjectMeta": "base",
    "ManifestError": "errors", "Problem": "errors",
    "Job": "job", "Member": "member", "Pool": "pool",
    "KINDS": "objects", "MeshObject": "objects", "model_for": "objects",
    "resolve_kind": "kinds", "to_document": "objects",
    "LoadedObject": "loader", "load_manifests": "loader", "load_text": "loader",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _HOME:
        value = getattr(import_module(f"manifests.{_HOME[name]}"), name)
        globals()[name] = value  # once
        return value
    raise AttributeError(f"module 'manifests' has no attribute {name!r}")


__all__ = [
    "API_VERSION",
    "KINDS",
    "Condition",
    "Job",
    "LoadedObject",
    "ManifestError",
    "Member",
    "MeshObject",
    "ObjectMeta",
    "Pool",
    "Problem",
    "load_manifests",
    "load_text",
    "model_for",
    "resolve_kind",
    "to_document",
]
