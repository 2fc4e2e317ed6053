"""The Member kind: this device's (or another device's) membership of a pool."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from manifests.base import BaseStatus, ObjectMeta, ObjectName, StrictModel
from manifests.fields import Fingerprint, MemorySize

MemberPhase = Literal["Pending", "Approved", "Denied", "Joined", "Revoked"]


class PoolRef(StrictModel):
    """The pool to join, pinned by its root key."""

    name: ObjectName = Field(description="The pool's name.")
    id: str = Field(min_length=1, max_length=128, description="The pool ID.")
    root_fingerprint: Fingerprint = Field(
        description="sha256:<hex> of the pool root public key, pinned when joining."
    )


class Capacity(StrictModel):
    """What this member offers the pool."""

    memory_bytes: MemorySize | None = Field(
        default=None,
        gt=0,
        description=(
            "Memory to offer the pool, in bytes or with a unit (8GiB or 8Gi, 512MiB, 1.5GB);"
            " default: what the device has free. A job's share here takes at most this"
            " much (its weights in the smallest layout that fits, plus its KV cache; one"
            " share held at a time), and the member states at most this much free to the"
            " planner."
        ),
    )


class MemberSpec(StrictModel):
    """What the user wants of a membership."""

    pool: PoolRef = Field(description="The pool this member belongs to.")
    token_file: str | None = Field(
        default=None,
        description="Path of a file holding the join token (never put a token in a manifest).",
    )
    device_name: str | None = Field(
        default=None, max_length=64, description="Device name; default: from `meshctl init`."
    )
    capacity: Capacity = Field(default_factory=Capacity, description="Capacity overrides.")


class MemberStatus(BaseStatus):
    """What the agent observed of a membership."""

    phase: MemberPhase | None = Field(default=None, description="Where the membership is.")
    node_id: str | None = Field(default=None, description="The member's node ID.")
    certificate_fingerprint: str | None = Field(
        default=None, description="sha256:<hex> of the member certificate."
    )
    key_fingerprint: str | None = Field(
        default=None, description="sha256:<hex> of the member's public key (its identity)."
    )
    not_after: datetime | None = Field(default=None, description="When the certificate expires.")


class Member(StrictModel):
    """A device's membership of a pool."""

    api_version: Literal["meshnet.dev/v1alpha1"] = Field(
        default="meshnet.dev/v1alpha1", description="Always meshnet.dev/v1alpha1."
    )
    kind: Literal["Member"] = Field(default="Member", description="Always Member.")
    metadata: ObjectMeta = Field(description="Name, labels and bookkeeping.")
    spec: MemberSpec = Field(description="What the user wants.")
    status: MemberStatus = Field(
        default_factory=MemberStatus, description="Written by the agent; ignored on apply."
    )
