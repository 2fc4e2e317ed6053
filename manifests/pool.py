"""The Pool kind: a set of devices that serve inference together."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from manifests.base import BaseStatus, LenientModel, ObjectMeta, StrictModel
from manifests.durations import Duration
from manifests.fields import HostPort, MulticastAddress


class DiscoverySpec(StrictModel):
    """How devices find each other on the LAN."""

    group: MulticastAddress = Field(
        default="239.192.0.1", description="UDP multicast group for beacons."
    )
    port: int = Field(default=42424, gt=0, lt=65536, description="UDP port for beacons.")
    interface: str = Field(
        default="auto",
        description="Interface for beacons: 'auto' (every up, multicast-capable, "
        "non-loopback interface but virtual bridges), an interface name, or one of its IPs.",
    )
    include_interfaces: list[str] = Field(
        default_factory=list,
        max_length=64,
        description="With 'auto': name patterns (docker0, br-*) of virtual bridges to beacon on too.",
    )
    exclude_interfaces: list[str] = Field(
        default_factory=list,
        max_length=64,
        description="With 'auto': name patterns (wg*, tun*) of interfaces never to beacon on.",
    )
    beacon_interval: Duration = Field(
        default=5.0, description="How often beacons are sent, e.g. '5s'."
    )
    static_peers: list[HostPort] = Field(
        default_factory=list,
        description="host:port of peers to beacon by unicast (for networks without multicast).",
    )


class RingSpec(StrictModel):
    """How the ring divides work between members."""

    shard_columns: int = Field(
        default=8192, gt=0, le=1 << 20, description="Columns the ring divides among members."
    )
    weighting: Literal["equal", "memory"] = Field(
        default="equal", description="Split columns equally or in proportion to memory."
    )


class PoolSpec(StrictModel):
    """What the user wants of a pool."""

    network_id: str = Field(
        default="default", min_length=1, max_length=64, description="Network this pool runs on."
    )
    admission: Literal["token", "approve", "auto"] = Field(
        default="token",
        description=(
            "How members are admitted: 'token' (a valid join token), 'approve' (an admin "
            "approves each request), 'auto' (anyone naming the pool ID and root key)."
        ),
    )
    discovery: DiscoverySpec = Field(
        default_factory=DiscoverySpec, description="LAN discovery settings."
    )
    ring: RingSpec = Field(default_factory=RingSpec, description="Ring settings.")
    relays: list[HostPort] = Field(
        default_factory=list, description="host:port of relays members keep reservations on."
    )
    control_plane: HostPort | None = Field(
        default=None, description="host:port of the pool's HTTP control plane."
    )


class PoolMemberStatus(LenientModel):
    """One member as the agent sees it."""

    node_id: str = Field(description="The member's node ID.")
    name: str = Field(default="", description="The member's device name.")
    status: str = Field(default="", description="ONLINE, SUSPECT or OFFLINE.")


class PoolStatus(BaseStatus):
    """What the agent observed of a pool."""

    pool_id: str | None = Field(default=None, description="Pool ID derived from the root key.")
    root_fingerprint: str | None = Field(
        default=None, description="sha256:<hex> of the pool root public key."
    )
    role: Literal["admin", "member"] | None = Field(
        default=None, description="This device's role in the pool."
    )
    members: list[PoolMemberStatus] = Field(default_factory=list, description="Known members.")


class Pool(StrictModel):
    """A pool of devices on one LAN."""

    api_version: Literal["meshnet.dev/v1alpha1"] = Field(
        default="meshnet.dev/v1alpha1", description="Always meshnet.dev/v1alpha1."
    )
    kind: Literal["Pool"] = Field(default="Pool", description="Always Pool.")
    metadata: ObjectMeta = Field(description="Name, labels and bookkeeping.")
    spec: PoolSpec = Field(default_factory=PoolSpec, description="What the user wants.")
    status: PoolStatus = Field(
        default_factory=PoolStatus, description="Written by the agent; ignored on apply."
    )
