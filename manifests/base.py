"""Shared building blocks of every meshnet object: metadata, conditions, model bases.

Specs are strict (unknown fields are errors) because people write them; statuses and
metadata written by machines are read back leniently. Field names are camelCase on the
wire (`networkId`) and snake_case in Python (`network_id`).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

API_VERSION = "meshnet.dev/v1alpha1"

_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$")


def _check_name(value: str) -> str:
    if not _NAME_RE.match(value):
        raise ValueError(
            "must be 1-63 lowercase letters, digits, '-' or '.', "
            "starting and ending with a letter or digit"
        )
    return value


ObjectName = Annotated[str, AfterValidator(_check_name)]


def object_name_from(text: str, limit: int = 50, fallback: str = "member") -> str:
    """A valid object name made from free text (a device name): `Bob's Laptop` -> `bob-s-laptop`."""
    return re.sub(r"[^a-z0-9.-]+", "-", text.lower())[:limit].strip("-.") or fallback


class StrictModel(BaseModel):
    """Base for what users write: unknown fields are errors."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        validate_default=True,
        defer_build=True,  # built on first use: a command pays only for the kinds it reads
    )


class LenientModel(BaseModel):
    """Base for what machines write and read back: unknown fields are kept."""

    model_config = ConfigDict(
        extra="allow", alias_generator=to_camel, populate_by_name=True, defer_build=True
    )


class Condition(LenientModel):
    """One observation about an object, Kubernetes style."""

    type: str = Field(description="Condition type, e.g. Ready, Reconciling, Stalled.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(default="", description="CamelCase machine-readable reason.")
    message: str = Field(default="", description="Human-readable explanation.")
    last_transition_time: datetime | None = Field(
        default=None, description="When status last changed."
    )


class ObjectMeta(StrictModel):
    """Identity and bookkeeping of an object. Only name, labels and annotations are the
    user's; the store fills the rest (values given in a manifest are checked, not copied)."""

    name: ObjectName = Field(description="Unique name of the object within its kind.")
    labels: dict[str, str] = Field(default_factory=dict, description="Identifying labels.")
    annotations: dict[str, str] = Field(default_factory=dict, description="Free-form notes.")
    uid: str | None = Field(default=None, description="Set by the store; unique per object.")
    generation: int | None = Field(
        default=None, description="Set by the store; bumped only when spec changes."
    )
    resource_version: str | None = Field(
        default=None,
        description="Set by the store; a write that names a stale version is refused.",
    )
    creation_timestamp: datetime | None = Field(
        default=None, description="Set by the store when the object is created."
    )


class BaseStatus(LenientModel):
    """Status fields shared by every kind; written only by the agent."""

    observed_generation: int | None = Field(
        default=None, description="The spec generation the agent last acted on."
    )
    conditions: list[Condition] = Field(default_factory=list, description="Observations.")

    @classmethod
    def patch(cls, **fields: Any) -> dict[str, Any]:
        """The given fields (Python names) as the partial status document the store merges
        into a stored status: validated, camelCase, JSON values; fields not given are left
        out. An unknown name is a TypeError, a bad value pydantic's ValidationError."""
        unknown = sorted(set(fields) - set(cls.model_fields))
        if unknown:
            raise TypeError(f"{cls.__name__} has no field {', '.join(unknown)}")
        validated = cls.model_validate(fields)
        return validated.model_dump(mode="json", by_alias=True, exclude_unset=True)

    def condition(self, type_: str) -> Condition | None:
        """The condition of that type, if any."""
        return next((c for c in self.conditions if c.type == type_), None)
