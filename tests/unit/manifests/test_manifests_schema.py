"""The exported JSON Schema documents every field and accepts what the loader accepts."""

from __future__ import annotations

from typing import Any

import pytest

from manifests import KINDS
from manifests.schema import all_schemas, kind_schema


def _properties(schema: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = list(schema.get("properties", {}).items())
    for definition in schema.get("$defs", {}).values():
        found.extend(definition.get("properties", {}).items())
    return found


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_field_has_a_description(kind: str) -> None:
    schema = kind_schema(kind)
    missing = [name for name, prop in _properties(schema) if "description" not in prop]
    assert missing == []


def test_schema_uses_camel_case_and_forbids_unknown_fields() -> None:
    schema = kind_schema("Pool")
    spec = schema["$defs"]["PoolSpec"]
    assert "networkId" in spec["properties"]
    assert spec["additionalProperties"] is False


def test_combined_schema_lists_every_kind() -> None:
    assert len(all_schemas()["oneOf"]) == len(KINDS)
