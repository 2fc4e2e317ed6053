"""The steps of forming a pool, as a user runs them, for the e2e tests."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

from agents import wait_for
from lan import Device, Lan

from manifests import Member, Pool
from reconciler.store import Store

POOL_YAML = """apiVersion: meshnet.dev/v1alpha1
kind: Pool
metadata:
  name: test-pool
spec:
  admission: {admission}
  discovery:
    beaconInterval: 1s
  relays: [{relays}]
  ring: {{weighting: {weighting}}}
"""

MEMBER_YAML = """apiVersion: meshnet.dev/v1alpha1
kind: Member
metadata:
  name: {name}
  annotations: {{meshnet.dev/relays: "{relays}", meshnet.dev/control-plane: "{control_plane}",
                meshnet.dev/ring-weighting: "{weighting}"}}
spec:
  pool:
    name: test-pool
    id: {pool_id}
    rootFingerprint: "{fingerprint}"
{token_line}  capacity: {{memoryBytes: {memory}}}
"""


def get(device: Device, kind: str, name: str) -> Any:
    with Store.open(device.home.root) as store:
        return store.get(kind, name)


def observed(device: Device, key: str) -> Any:
    with Store.open(device.home.root) as store:
        return store.get_observed(key)


def start_admin(
    device: Device, admission: str = "token", relays: str = "", weighting: str = "equal"
) -> Pool:
    device.cli("init", "--network-id", "lan", "--name", device.name)
    manifest = device.home.root / "pool.yaml"
    manifest.write_text(POOL_YAML.format(admission=admission, relays=relays, weighting=weighting))
    device.cli("apply", "-f", str(manifest))
    device.start_agent()

    def ready() -> Pool | None:
        pool = get(device, "Pool", "test-pool")
        return pool if isinstance(pool, Pool) and pool.status.pool_id and pool.status.role else None

    return wait_for(ready, what=f"{device.name}: pool Ready")


def make_token(admin: Device) -> str:
    return admin.cli("token", "create", "--ttl", "1h").stdout.strip()


def request_join(
    device: Device,
    pool: Pool,
    token: str | None,
    relays: str = "",
    control_plane: str = "",
    memory: int | None = None,
    weighting: str = "",
) -> None:
    """init, then apply a Member manifest naming the pool, then start the agent."""
    device.cli("init", "--network-id", "lan", "--name", device.name)
    token_line = ""
    if token is not None:
        token_file = device.home.root / "join.token"
        token_file.write_text(token + "\n")
        token_line = f"  tokenFile: {token_file}\n"
    manifest = device.home.root / "member.yaml"
    manifest.write_text(MEMBER_YAML.format(
        name=device.name, pool_id=pool.status.pool_id, relays=relays, control_plane=control_plane,
        memory=memory if memory is not None else "null", weighting=weighting,
        fingerprint=pool.status.root_fingerprint, token_line=token_line,
    ))  # fmt: skip
    device.cli("apply", "-f", str(manifest))
    device.start_agent()


def member_phase(device: Device) -> str | None:
    member = get(device, "Member", device.name)
    return member.status.phase if isinstance(member, Member) else None


def wait_joined(device: Device, timeout: float = 30) -> None:
    wait_for(lambda: member_phase(device) == "Joined", timeout, f"{device.name} joined")


def topology(device: Device, pool_id: str) -> dict[str, Any] | None:
    path = device.home.ring_topology(pool_id)
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


def ring_of(device: Device, size: int) -> dict[str, Any] | None:
    """The converged ring once it has `size` members."""
    ring = observed(device, "ring/test-pool")
    if ring and ring.get("converged") and len(ring["members"]) == size:
        return dict(ring)
    return None


def peer_status(device: Device, node_id: str) -> str | None:
    for peer in observed(device, "peers/test-pool") or []:
        if peer["nodeId"] == node_id:
            return str(peer["status"])
    return None


def node_id(device: Device) -> str:
    return str(json.loads((device.home.root / "node.json").read_text())["node_id"])


def two_device_pool(
    lan: Lan,
    model: Path,
    bridges: tuple[str, str] = ("br0", "br0"),
    env: dict[str, str] | None = None,
) -> tuple[Device, Device]:
    """An admin and a member in a converged ring, both keeping ``model`` (peers name
    models, never paths), each limited to one BLAS thread, with exact activations (the
    oracle mode: a pool gives the greedy tokens of one device alone, token for token).
    ``bridges``: where each plugs in (``br0`` and ``br1`` are joined only by a delay
    line); ``env``: more agent environment (``MESHNET_ACTIVATIONS``, ``MESHNET_THREADS``)."""
    admin, member = lan.add("device1", bridge=bridges[0]), lan.add("device2", bridge=bridges[1])
    for device in (admin, member):
        device.extra_env = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
                            "MESHNET_ACTIVATIONS": "exact", **(env or {})}  # fmt: skip
        device.keep_model(model)
    pool = start_admin(admin)
    request_join(member, pool, make_token(admin))
    wait_joined(member)
    for device in (admin, member):
        wait_for(partial(ring_of, device, 2), 30, "ring of 2")
    return admin, member


TINY = Path(__file__).resolve().parents[1] / "fixtures" / "models" / "tiny-llama.gguf"


def inference(device: Device, *args: str, timeout: float = 180) -> dict[str, Any]:
    """``mesh inference -o json ARGS`` on ``device``: its JSON answer."""
    result = device.cli("inference", "-o", "json", *args, tool="mesh", timeout=timeout)
    return dict(json.loads(result.stdout))
