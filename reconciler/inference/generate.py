"""Token-by-token generation for streaming, with per-step timings.

``generate`` is a plain generator: the Job controller pulls one :class:`TokenEvent` at a
time. Each rank runs it on its own Engine with the same prompt and parameters; the
events agree on every rank (identical logits, identically seeded sampler).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from reconciler.inference.collectives import Metered
from reconciler.inference.sampling import Sampler, SamplingParams
from reconciler.inference.tokenizer import Tokenizer

if TYPE_CHECKING:
    from reconciler.inference.model import Engine


@dataclass(frozen=True)
class TokenEvent:
    """One generated token and what it cost on this rank."""

    index: int  # 0-based position in the completion
    token_id: int
    text: str  # new text (empty without a tokenizer, or while held back)
    finish_reason: str | None  # None, "eos", "stop" or "length"
    step_ms: float  # forward pass producing this token's logits (prefill for index 0)
    comm_ms: float  # part of step_ms spent in collectives
    bytes_sent: int  # sent by this rank during that step
    prefill_ms: float  # the prompt's forward pass (same on every event)
    prompt_tokens: int

    @property
    def compute_ms(self) -> float:
        """step_ms minus comm_ms."""
        return self.step_ms - self.comm_ms


class _StopScanner:
    """Turns text deltas into emitted text, holding back a possible stop-string prefix."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self.stops = [s for s in stops if s]
        self.text = ""
        self.emitted = 0

    def push(self, delta: str) -> tuple[str, bool]:
        """(text to emit now, whether a stop string was hit)."""
        self.text += delta
        hits = [i for s in self.stops if (i := self.text.find(s, self._scan_from(s))) >= 0]
        if hits:
            return self._emit_to(min(hits)), True
        held = max((self._held(s) for s in self.stops), default=0)
        return self._emit_to(len(self.text) - held), False

    def flush(self) -> str:
        """Whatever was held back."""
        return self._emit_to(len(self.text))

    def _scan_from(self, stop: str) -> int:
        return max(0, self.emitted - len(stop))

    def _held(self, stop: str) -> int:
        for n in range(min(len(stop) - 1, len(self.text)), 0, -1):
            if self.text.endswith(stop[:n]):
                return n
        return 0

    def _emit_to(self, end: int) -> str:
        out = self.text[self.emitted : max(end, self.emitted)]
        self.emitted = max(end, self.emitted)
        return out


def generate(
    engine: Engine,
    prompt_ids: list[int],
    params: SamplingParams,
    tokenizer: Tokenizer | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> Iterator[TokenEvent]:
    """Yield the completion of ``prompt_ids`` one token at a time."""
    if not prompt_ids:
        raise ValueError("the prompt has no tokens")
    meter = Metered(engine.comm, clock)
    engine.comm = meter
    try:
        yield from _run(engine, meter, prompt_ids, params, tokenizer, clock)
    finally:
        engine.comm = meter.inner


def _run(
    engine: Engine,
    meter: Metered,
    prompt_ids: list[int],
    params: SamplingParams,
    tokenizer: Tokenizer | None,
    clock: Callable[[], float],
) -> Iterator[TokenEvent]:
    sampler = Sampler(params, prompt_ids)
    decoder = tokenizer.stream() if tokenizer else None
    scanner = _StopScanner(params.stop)
    eos = set(engine.config.eos_ids) | set(tokenizer.eos_ids if tokenizer else ())
    engine.reset()
    engine.greedy = params.argmax_only
    step = _Step(meter, clock)
    logits = engine.prefill(list(prompt_ids))
    prefill_ms, comm_ms, sent = step.done()
    step_ms = prefill_ms
    for index in range(params.max_tokens):
        token = sampler.sample(logits)
        finish: str | None = None
        text = ""
        if token in eos and not params.ignore_eos:
            finish = "eos"
        else:
            text, stopped = scanner.push(decoder.feed(token) if decoder else "")
            if stopped:
                finish = "stop"
            elif index + 1 == params.max_tokens or engine.pos + 1 > engine.cache_len:
                finish = "length"
        if finish in ("eos", "length"):
            text += scanner.flush()
        yield TokenEvent(
            index, token, text, finish, step_ms, comm_ms, sent, prefill_ms, len(prompt_ids)
        )
        if finish:
            return
        step = _Step(meter, clock)
        logits = engine.decode(token)
        step_ms, comm_ms, sent = step.done()


class _Step:
    """Times one forward pass and the collectives inside it."""

    def __init__(self, meter: Metered, clock: Callable[[], float]) -> None:
        self.meter, self.clock = meter, clock
        self.start, self.comm0, self.bytes0 = clock(), meter.seconds, meter.bytes_sent

    def done(self) -> tuple[float, float, int]:
        """(step ms, comm ms, bytes sent)."""
        ms = (self.clock() - self.start) * 1000.0
        comm = (self.meter.seconds - self.comm0) * 1000.0
        return ms, comm, self.meter.bytes_sent - self.bytes0
