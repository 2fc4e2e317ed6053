"""What the planner decides from: per-member measurements, per-link measurements and the
model's costs. All figures are plain floats in SI units (seconds, bytes, bytes/second)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MemberMeasure:
    """One member as the pool sees it (published with its gossip state)."""

    node_id: str
    weight_bytes_per_s: float  # kernel self-test: bytes of quantized weights read per second
    free_memory: int  # bytes the member can give to weights and KV cache


@dataclass(frozen=True)
class LinkMeasure:
    """A link between two members, measured by gossip probes (symmetric)."""

    a: str
    b: str
    rtt_s: float  # round trip of a small message
    bytes_per_s: float  # throughput of a large message

    def joins(self, x: str, y: str) -> bool:
        """Whether this link is the one between ``x`` and ``y``."""
        return {self.a, self.b} == {x, y}


@dataclass(frozen=True)
class ModelCost:
    """A model's sizes as decoding sees them."""

    n_layers: int
    layer_bytes: int  # quantized weight bytes of one decoder layer
    head_bytes: int  # embedding + LM head (+ final norm) bytes
    kv_bytes_per_layer: int  # KV cache bytes of one layer for the job's sequence length
    activation_bytes: int  # bytes of one token's activation vector on the wire (D values)

    @property
    def total_bytes(self) -> int:
        """Weights of the whole model."""
        return self.n_layers * self.layer_bytes + self.head_bytes

    @property
    def kv_bytes(self) -> int:
        """KV cache of the whole model for the job."""
        return self.n_layers * self.kv_bytes_per_layer
