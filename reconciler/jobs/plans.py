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
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from gguf import GGMLQuantizationType

from reconciler.gossip.ring import Ring
from reconciler.inference.collectives import Collectives
from reconciler.inference.config import ModelConfig
from reconciler.inference.gguf_model import open_gguf
from reconciler.inference.hf_model import weight_files
from reconciler.inference.q80reduce import resolve_wire as resolve_wire
from reconciler.inference.q80reduce import with_wire
from reconciler.inference.quant.blocks import FLOAT_TYPES
from reconciler.inference.quant.layout import F32_BYTES, held_bytes
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


@dataclass(frozen=True)
class TensorRecord:
    """One tensor of a model as stored: its format (None: a safetensors float), weights
    and bytes in the file."""

    name: str
    qtype: GGMLQuantizationType | None
    n_weights: int
    file_bytes: int
    rank: int  # dimensions
    row_length: int = 0  # inputs per row (GGUF's first dimension; 0 for a vector)


def tensor_records(path: Path) -> list[TensorRecord]:
    """Every tensor of a model file (GGUF) or directory (safetensors headers)."""
    if not path.is_dir():
        return [
            TensorRecord(
                t.name,
                GGMLQuantizationType(int(t.tensor_type)),
                int(t.n_elements),
                int(t.n_bytes),
                len(t.shape),
                int(t.shape[0]) if len(t.shape) > 1 else 0,
            )
            for t in open_gguf(path, tensors_only=True).tensors
        ]
    records: list[TensorRecord] = []
    for file in sorted(set(weight_files(path).values())):
        with file.open("rb") as fh:
            (length,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(min(length, MAX_HEADER)))
        header.pop("__metadata__", None)
        for name, info in header.items():
            start, end = info["data_offsets"]
            shape = [int(n) for n in info.get("shape", [])]
            records.append(TensorRecord(name, None, math.prod(shape), int(end) - int(start),
                                        len(shape), shape[-1] if len(shape) > 1 else 0))  # fmt: skip
    return records


def tensor_sizes(path: Path) -> dict[str, int]:
    """Bytes of every tensor of a model file (GGUF) or directory (safetensors headers)."""
    return {r.name: r.file_bytes for r in tensor_records(path)}


_EMBED = ("token_embd.weight", "embed_tokens.weight")  # GGUF's name, or a HF name's end
_LM_HEAD = ("output.weight", "lm_head.weight")


def _named(name: str, names: tuple[str, str]) -> bool:
    return name == names[0] or name == names[1] or name.endswith("." + names[1])


def held_sizes(records: list[TensorRecord], layout: str) -> dict[str, int]:
    """Bytes every tensor takes once loaded in ``layout`` (``exact``, ``int8``, ``ggml``
    or ``numpy``; ``quant.layout``): the sizes ``model_cost`` takes to cost a share as it
    will really be held. The onnxruntime layouts keep a quantized embedding as the file's
    mapped pages (read on lookup: nothing up front) unless it is also the LM head; the
    ggml layout any embedding that is not the head."""
    untied = any(_named(r.name, _LM_HEAD) for r in records)
    sizes: dict[str, int] = {}
    for r in records:
        if r.rank < 2 or r.qtype is None:
            sizes[r.name] = r.n_weights * F32_BYTES
        elif (
            layout != "numpy"
            and untied
            and _named(r.name, _EMBED)
            and (r.qtype not in FLOAT_TYPES or layout == "ggml")
        ):
            sizes[r.name] = 0  # mapped, untouched until looked up
        else:
            sizes[r.name] = held_bytes(r.qtype, r.n_weights, layout, r.row_length)
    return sizes


def wrap_wire(comm: Collectives, wire: str) -> Collectives:
    """``comm`` as it sends partial results in ``wire`` format (f32 or q80)."""
    return with_wire(comm, wire)


def share_bytes(offer: JobOffer, rank: int, cost: ModelCost) -> int:
    """Bytes of the model (in ``cost``'s terms: the file's, or a layout's from
    ``held_sizes``) and float32 KV cache rank ``rank`` holds under the offer's plan."""
    return slot_bytes(offer.plan, offer.participants, rank, offer.shard_columns, cost)


class Slot(Protocol):
    """A participant or plan slot: its ring columns and decoder layers."""

    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...
    @property
    def layer_start(self) -> int: ...
    @property
    def layer_end(self) -> int: ...


def slot_bytes(kind: str, slots: Sequence[Slot], rank: int, shard_columns: int,
               cost: ModelCost) -> int:  # fmt: skip
    """``share_bytes`` of rank ``rank`` among ``slots`` (participants or plan slots: they
    have ``start``/``end`` columns and ``layer_start``/``layer_end``) of a ``kind`` plan."""
    p = slots[rank]
    whole = cost.total_bytes + cost.kv_bytes
    if kind == "single":
        return whole
    if kind == "pipeline":
        layers = (p.layer_end - p.layer_start) * (cost.layer_bytes + cost.kv_bytes_per_layer)
        ends = rank == 0 or rank == len(slots) - 1  # embedding or LM head
        return layers + (cost.head_bytes if ends else 0)
    return whole * (p.end - p.start) // shard_columns


def _gib(n: float) -> str:
    """``n`` bytes in GiB, MiB or KiB, whichever reads best."""
    for unit, shift in (("GiB", 30), ("MiB", 20)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.2f} {unit}"
    return f"{n / 1024:.1f} KiB"


def memory_problem(
    need: int,
    available: int,
    layout: str | None = None,
    file_bytes: int | None = None,
    offered: bool = False,
) -> str | None:
    """Why a share of ``need`` bytes (in ``layout``; ``file_bytes`` in the file, KV cache
    included in both) cannot be loaded with ``available`` bytes free (or ``offered``:
    the member's ``spec.capacity.memoryBytes``, below what is free); None if it can."""
    if need <= available:
        return None
    held = f" in the {layout} layout" if layout else ""
    stored = f" ({_gib(file_bytes)} in the file)" if file_bytes is not None else ""
    room = _room(available, offered)
    return f"this share needs {_gib(need)}{held}{stored} with its KV cache, {room}"


def _room(available: int, offered: bool) -> str:
    if offered:
        source = "its Member's capacity or MESHNET_MEMORY_OFFER"
        return f"the device offers {_gib(available)} ({source})"
    return f"{_gib(available)} is free"


@dataclass(frozen=True)
class LayoutChoice:
    """The layout a member loads its share in, and why, or why it cannot."""

    layout: str  # "exact" | "int8" | "ggml" | "numpy"
    note: str | None = None  # set when memory made the choice (logged, in the job's status)
    problem: str | None = None  # set when no layout fits: the share must be refused


def choose_layout(
    needs: Mapping[str, int],
    free: int,
    default: str,
    chosen: bool,
    file_bytes: int,
    offered: bool = False,
) -> LayoutChoice:
    """Pick the layout of a share needing ``needs[layout]`` bytes with ``free`` bytes free
    (``offered``: the member offers that much, less than the device has free).

    ``default`` is the activations asked for (or the engine's default), ``chosen``
    whether a user asked for them explicitly. Only ``numpy`` (or only ``ggml``) in
    ``needs``: those kernels, no choice. An ``int8`` share that does not fit loads in
    the ``ggml`` layout (the file's own blocks, activations also 8-bit) where that fits,
    else, unless int8 was chosen, ``exact`` where that fits (said in ``note``). Nothing
    that fits gives a ``problem`` naming the smallest layout that was allowed."""
    layout = default if default in needs else next(iter(needs))
    problem = memory_problem(needs[layout], free, layout, file_bytes, offered)
    fallbacks = [f for f in ("ggml", *(() if chosen else ("exact",))) if f in needs]
    if problem is None or layout != "int8" or not fallbacks:
        return LayoutChoice(layout, problem=problem)
    for other in fallbacks:
        if needs[other] <= free:
            why = "exact activations" if other == "exact" else "the file's own blocks (ggml)"
            note = (
                f"{why}: the int8 layout needs {_gib(needs['int8'])}, "
                f"{_room(free, offered)}, the {other} layout {_gib(needs[other])}"
            )
            return LayoutChoice(other, note=note)
    smallest = min(fallbacks, key=lambda f: needs[f])
    problem = memory_problem(needs[smallest], free, smallest, file_bytes, offered)
    return LayoutChoice(smallest, problem=problem)
