"""All-reduce with 8-bit contributions on the wire (``--wire q80``).

:class:`Q80Collectives` wraps any :class:`Collectives`. Its ``all_reduce_sum`` encodes
this rank's contribution as Q80 blocks (``q80.py``: 34 bytes per 32 values instead of
128), exchanges the encoded bytes through the inner ``all_gather``, decodes every part
(its own too) and sums them in rank order: every rank adds the same decoded values in
the same order and gets identical bits, as the float32 all-reduce does. ``all_gather``
(logits, greedy winners) and ``broadcast`` (pipeline stages) pass through unchanged.

The encoded bytes travel as a float32 array that is only a carrier (zero-padded to a
multiple of 4 bytes, never computed on): the collectives seam and the tensor frames
keep carrying one dtype, and copies keep the bit patterns.

Each value comes back within half a block step (``max|block| / 254``, plus the float16
rounding of the scale). A block whose largest value exceeds float16's range
(about 8.3e6) saturates there: such activations need the f32 wire.
"""

from __future__ import annotations

import os

import numpy as np

from reconciler.inference import q80
from reconciler.inference.collectives import Array, Collectives, sum_in_rank_order
from reconciler.inference.errors import CollectiveError

WIRES = ("auto", "f32", "q80")
WIRE_ENV = "MESHNET_WIRE"


def default_wire() -> str:
    """``MESHNET_WIRE`` if set, else ``auto``."""
    return os.environ.get(WIRE_ENV, "").strip() or "auto"


def resolve_wire(wire: str, activations: str) -> str:
    """``f32`` or ``q80`` for a user's choice: ``auto`` is q80 with int8 activations, f32
    with exact ones (exact mode + f32 gives the same greedy tokens as one device)."""
    if wire not in WIRES:
        raise ValueError(f"unknown wire format {wire!r} (choose from {', '.join(WIRES)})")
    if wire == "auto":
        return "q80" if activations == "int8" else "f32"
    return wire


def with_wire(comm: Collectives, wire: str) -> Collectives:
    """``comm`` itself for ``f32``, wrapped in :class:`Q80Collectives` for ``q80``."""
    if wire == "f32" or comm.world_size == 1:
        return comm
    if wire == "q80":
        return Q80Collectives(comm)
    raise ValueError(f"unknown wire format {wire!r}")


def carrier_len(n_values: int) -> int:
    """float32 carrier elements holding the Q80 encoding of ``n_values`` values."""
    return -(-q80.encoded_size(n_values) // 4)


def to_carrier(data: bytes) -> Array:
    """Encoded bytes as a float32 carrier array (zero-padded to whole elements)."""
    padded = data + bytes(-len(data) % 4)
    carrier: Array = np.frombuffer(padded, dtype=np.float32)  # [ceil(B/4)]
    return carrier


def from_carrier(carrier: Array, n_values: int) -> Array:
    """``n_values`` float32 values back from a carrier; CollectiveError when malformed."""
    if carrier.dtype != np.float32 or carrier.shape != (carrier_len(n_values),):
        raise CollectiveError(
            f"a Q80 contribution of shape {carrier.shape} cannot hold {n_values} values"
        )
    data = np.ascontiguousarray(carrier).tobytes()[: q80.encoded_size(n_values)]
    return q80.decode(data, n_values)


class Q80Collectives:
    """Collectives whose all-reduce sends Q80 blocks (see the module docstring)."""

    def __init__(self, inner: Collectives) -> None:
        self.inner = inner

    @property
    def rank(self) -> int:
        return self.inner.rank

    @property
    def world_size(self) -> int:
        return self.inner.world_size

    def all_reduce_sum(self, x: Array) -> Array:
        if self.world_size == 1:
            return x
        parts = self.inner.all_gather(to_carrier(q80.encode(x)))
        if len(parts) != self.world_size:
            raise CollectiveError(f"{len(parts)} contributions from {self.world_size} ranks")
        decoded = [from_carrier(p, x.size).reshape(x.shape) for p in parts]  # [..] each
        return sum_in_rank_order(decoded, x.shape)

    def all_gather(self, x: Array) -> list[Array]:
        return self.inner.all_gather(x)

    def broadcast(self, x: Array, root: int) -> Array:
        return self.inner.broadcast(x, root)

    def reduce_nbytes(self, x: Array) -> int:
        """Bytes this rank's contribution to ``all_reduce_sum(x)`` takes on the wire."""
        return carrier_len(x.size) * 4
