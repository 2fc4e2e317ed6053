"""Plans in the job protocol: the offer's participants from a :class:`JobPlan`, and a
member's share, wire format and ring check from the offer.

- ``single``: one participant, the full share.
- ``tensor``: column ranges in rank order, shares from ``sharding.plan_shares``.
- ``pipeline``: stages in order, each a contiguous layer range (``sharding.plan_stages``).

A member accepts a plan only among its own ring's members and shard columns: the plan
may re-cut columns or layers (by the measured speeds and memory the members published),
never bring in a node the ring does not have.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from reconciler.gossip.ring import Ring
from reconciler.inference.collectives import Collectives
from reconciler.inference.config import ModelConfig
from reconciler.inference.gguf_model import open_gguf
from reconciler.inference.hf_model import weight_files
from reconciler.inference.q80reduce import resolve_wire as resolve_wire
from reconciler.inference.q80reduce import with_wire
from reconciler.inference.sharding import RankShare, full_share, plan_shares, plan_stages
from reconciler.jobs.messages import JobOffer, Participant
from reconciler.placement.inputs import ModelCost
from reconciler.placement.ringplan import JobPlan, RingSlot

MAX_HEADER = 100 << 20  # a safetensors header larger than this is not read in full


def ring_slots(ring: Ring) -> list[RingSlot]:
    """The ring's members in position order, with their column ranges."""
    return [RingSlot(s.node_id, s.start, s.end) for s in sorted(ring.members, key=_position)]


def _position(slot: Any) -> int:
    return int(slot.position)


def participants(plan: JobPlan) -> tuple[Participant, ...]:
    """The offer's participants of a plan, in rank (stage) order."""
    return tuple(
        Participant(s.node_id, s.start, s.end, s.layer_start, s.layer_end) for s in plan.slots
    )


def ring_problem(offer: JobOffer, ring: Ring) -> str | None:
    """Why a member must refuse ``offer`` on its ``ring``, or None."""
    if offer.shard_columns != ring.shard_columns:
        return f"the offer splits {offer.shard_columns} columns, my ring {ring.shard_columns}"
    ids = {s.node_id for s in ring.members}
    strangers = [p.node_id for p in offer.participants if p.node_id not in ids]
    if strangers:
        return f"{', '.join(strangers[:3])} not in my ring"
    return None


def share_for(offer: JobOffer, rank: int, config: ModelConfig) -> RankShare:
    """What rank ``rank`` holds under the offer's plan; ValueError when the offer's
    layers do not fit the model."""
    if offer.plan == "single":
        return full_share(config)
    if offer.plan == "pipeline":
        counts = [p.layer_end - p.layer_start for p in offer.participants]
        if sum(counts) != config.n_layers:
            raise ValueError(f"the stages hold {sum(counts)} layers, the model {config.n_layers}")
        return plan_stages(config, counts)[rank]
    ranges = [(p.start, p.end) for p in offer.participants]
    return plan_shares(config, ranges, offer.shard_columns)[rank]


def tensor_sizes(path: Path) -> dict[str, int]:
    """Bytes of every tensor of a model file (GGUF) or directory (safetensors headers)."""
    if not path.is_dir():
        return {t.name: int(t.n_bytes) for t in open_gguf(path, tensors_only=True).tensors}
    sizes: dict[str, int] = {}
    for file in sorted(set(weight_files(path).values())):
        with file.open("rb") as fh:
            (length,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(min(length, MAX_HEADER)))
        header.pop("__metadata__", None)
        for name, info in header.items():
            start, end = info["data_offsets"]
            sizes[name] = int(end) - int(start)
    return sizes


def wrap_wire(comm: Collectives, wire: str) -> Collectives:
    """``comm`` as it sends partial results in ``wire`` format (f32 or q80)."""
    return with_wire(comm, wire)


def share_bytes(offer: JobOffer, rank: int, cost: ModelCost) -> int:
    """Bytes of the model file (and float32 KV cache) rank ``rank`` holds under the
    offer's plan: a lower bound of what loading it takes."""
    p = offer.participants[rank]
    whole = cost.total_bytes + cost.kv_bytes
    if offer.plan == "single":
        return whole
    if offer.plan == "pipeline":
        layers = (p.layer_end - p.layer_start) * (cost.layer_bytes + cost.kv_bytes_per_layer)
        ends = rank == 0 or rank == len(offer.participants) - 1  # embedding or LM head
        return layers + (cost.head_bytes if ends else 0)
    return whole * (p.end - p.start) // offer.shard_columns


# What a share takes in memory with int8 activations, against its bytes in the file, for
# the 4-bit formats where int8 takes more than exact: 1.36x (Q4_0), 1.42x (Q4_1), 1.58x
# (Q4_K), against 1.13x to 1.36x with exact activations (README, "Memory and
# activations"; 5-, 6- and 8-bit formats take less with int8 than with exact).
INT8_LAYOUT = 1.6


def memory_problem(need: int, available: int) -> str | None:
    """Why a share of ``need`` bytes cannot be loaded with ``available`` bytes free."""
    if need <= available:
        return None
    return f"this share needs at least {need / 2**30:.2f} GiB, {available / 2**30:.2f} GiB is free"
