"""Token-by-token generation for streaming, with per-step timings.

``generate`` is a plain generator: the Job controller pulls one :class:`TokenEvent` at a
time. Each rank runs it on its own Engine with the same prompt and parameters; the
events agree on every rank (identical logits, identically seeded sampler).

With ``params.draft_tokens`` (greedy only) each forward pass after the prefill verifies
drafted tokens and may yield several tokens (``speculative.py``): ``TokenEvent.round``
numbers the passes. A pass's cost (step_ms, comm_ms, bytes_sent) is reported on the first
token it yields and 0 on the others, so sums over the events stay the true totals.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from reconciler.inference.collectives import Metered
from reconciler.inference.sampling import Sampler, SamplingParams
from reconciler.inference.speculative import verify_round
from reconciler.inference.stepping import Stepper
from reconciler.inference.tokenizer import Tokenizer


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
    round: int = 0  # index of the forward pass that produced the token (0 = prefill)

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
    engine: Stepper,
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
        engine.greedy = False


def _run(
    engine: Stepper,
    meter: Metered,
    prompt_ids: list[int],
    params: SamplingParams,
    tokenizer: Tokenizer | None,
    clock: Callable[[], float],
) -> Iterator[TokenEvent]:
    sampler = Sampler(params, prompt_ids)
    eos = set(engine.config.eos_ids) | set(tokenizer.eos_ids if tokenizer else ())
    engine.reset()
    engine.greedy = params.argmax_only
    step = _Step(meter, clock)
    pending = [sampler.sample(engine.prefill(list(prompt_ids)))]  # tokens of this pass
    cost = step.done()
    out = _Emitter(params, tokenizer, eos, len(prompt_ids), engine.cache_len, cost[0])
    history = list(prompt_ids)  # prompt + emitted tokens (what prompt lookup searches)
    for round_ in itertools.count():
        for j, token in enumerate(pending):
            event = out.emit(token, round_, cost if j == 0 else (0.0, 0.0, 0))
            yield event
            if event.finish_reason:
                return
            history.append(token)
        step = _Step(meter, clock)
        if params.speculative:
            room = min(params.draft_tokens, params.max_tokens - out.count - 1)
            pending = verify_round(engine, history, room)
        else:
            pending = [sampler.sample(engine.decode(history[-1]))]
        cost = step.done()


class _Emitter:
    """Turns generated tokens into TokenEvents: text, stop strings, eos, length."""

    def __init__(self, params: SamplingParams, tokenizer: Tokenizer | None, eos: set[int],
                 prompt_len: int, cache_len: int, prefill_ms: float) -> None:  # fmt: skip
        self.params, self.eos, self.prefill_ms = params, eos, prefill_ms
        self.prompt_len, self.cache_len = prompt_len, cache_len
        self.decoder = tokenizer.stream() if tokenizer else None
        self.scanner = _StopScanner(params.stop)
        self.count = 0  # tokens emitted

    def emit(self, token: int, round_: int, cost: tuple[float, float, int]) -> TokenEvent:
        """The event of the next token, with its finish reason (None: go on)."""
        index, p = self.count, self.params
        self.count += 1
        finish: str | None = None
        text = ""
        if token in self.eos and not p.ignore_eos:
            finish = "eos"
        else:
            text, stopped = self.scanner.push(self.decoder.feed(token) if self.decoder else "")
            if stopped:
                finish = "stop"
            elif self.count == p.max_tokens or self.prompt_len + self.count > self.cache_len:
                finish = "length"  # ... or the cache has no room to feed this token back
        if finish in ("eos", "length"):
            text += self.scanner.flush()
        step_ms, comm_ms, sent = cost
        return TokenEvent(index, token, text, finish, step_ms, comm_ms, sent, self.prefill_ms,
                          self.prompt_len, round_)  # fmt: skip


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
