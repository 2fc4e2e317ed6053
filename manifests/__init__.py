"""meshnet's declarative API: Pool, Member and Job manifests.

Imports nothing else of the project; reads files and nothing more.
"""

from manifests.base import API_VERSION, Condition, ObjectMeta
from manifests.errors import ManifestError, Problem
from manifests.job import Job
from manifests.loader import LoadedObject, load_manifests, load_text
from manifests.member import Member
from manifests.objects import KINDS, MeshObject, model_for, resolve_kind, to_document
from manifests.pool import Pool

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
