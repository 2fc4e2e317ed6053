"""JSON Schema export, for editors' YAML completion (`meshctl schema [KIND]`)."""

from __future__ import annotations

from typing import Any

from manifests.objects import KINDS


def kind_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of one kind, as written by users (camelCase)."""
    return KINDS[kind].model_json_schema(by_alias=True, mode="validation")


def all_schemas() -> dict[str, Any]:
    """One schema accepting any kind, discriminated by `kind`."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "meshnet.dev/v1alpha1 manifest",
        "oneOf": [kind_schema(kind) for kind in KINDS],
    }
