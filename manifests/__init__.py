"""meshnet's declarative API: Pool, Member and Job manifests.

Imports nothing else of the project; reads files and nothing more. The YAML loader
(ruamel.yaml) is imported on first use of `load_manifests`/`load_text`, so that a
command that only reads stored objects does not pay for it.
"""

from typing import TYPE_CHECKING, Any

from manifests.base import API_VERSION, Condition, ObjectMeta
from manifests.errors import ManifestError, Problem
from manifests.job import Job
from manifests.member import Member
from manifests.objects import KINDS, MeshObject, model_for, resolve_kind, to_document
from manifests.pool import Pool

if TYPE_CHECKING:
    from manifests.loader import LoadedObject, load_manifests, load_text

_LAZY = ("LoadedObject", "load_manifests", "load_text")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from manifests import loader

        return getattr(loader, name)
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
