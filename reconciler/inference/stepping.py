"""What the decoding loop needs of an engine: the seam between ``generate`` /
``speculative`` (which tokens to feed and keep) and ``model.Engine`` (which runs the
passes). ``Engine`` is the one implementation; the loop never imports it."""

from __future__ import annotations

from typing import Protocol

from reconciler.inference.collectives import Collectives
from reconciler.inference.config import ModelConfig
from reconciler.inference.layers import F32


class Stepper(Protocol):
    """One rank's model with its position and KV cache."""

    config: ModelConfig
    comm: Collectives
    cache_len: int
    pos: int
    greedy: bool

    def reset(self) -> None: ...

    def rewind(self, pos: int) -> None: ...

    def prefill(self, tokens: list[int], all_logits: bool = False) -> F32: ...

    def decode(self, token: int) -> F32: ...
