"""One member's part of one job: load its slice, then run the shared generation loop.

This is the engine side of the driver: :class:`~reconciler.jobs.service.JobService`
creates a run when the job machine says ``LoadSlice``, starts it on ``StartSlice`` and
aborts it on ``StopSlice``; the run decides nothing of the protocol.

Every rank runs the same ``generate`` loop on its own Engine: logits are all-gathered,
so every rank samples the same token with the same seeded generator and no token is
ever broadcast. Loading and generation run in threads of their own; everything they
report goes to a :class:`MemberSink` on the event loop (``call_soon_threadsafe``), which
hands it to the machine.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import psutil

from reconciler.inference.config import ModelConfig
from reconciler.inference.errors import CollectiveError
from reconciler.inference.generate import TokenEvent, generate
from reconciler.inference.model import Engine
from reconciler.inference.tokenizer import Tokenizer
from reconciler.jobs.errors import CollectiveTimeout, Reason
from reconciler.jobs.limits import cache_len
from reconciler.jobs.messages import JobOffer, MemberStats
from reconciler.jobs.netcollectives import NetworkCollectives
from reconciler.jobs.plans import (
    LayoutChoice,
    choose_layout,
    held_sizes,
    share_bytes,
    share_for,
    tensor_records,
    wrap_wire,
)
from reconciler.jobs.shards import ShardCache, layout_of
from reconciler.placement.modelcost import model_cost

log = logging.getLogger("meshnet.jobs")
PROGRESS_STEP = 0.1  # report load progress in steps of at least this much


class MemberSink(Protocol):
    """Receives a member run's reports, on the event loop thread."""

    def progress(self, node_id: str, fraction: float) -> None: ...
    def ready(self, node_id: str, load_ms: float, resident_bytes: int) -> None: ...
    def load_failed(self, node_id: str, reason: str, message: str) -> None: ...
    def token(self, event: TokenEvent) -> None: ...
    def done(self, stats: MemberStats) -> None: ...
    def failed(self, node_id: str, reason: str, message: str) -> None: ...


class MemberRun:
    """This node's rank of one job session."""

    def __init__(
        self,
        offer: JobOffer,
        self_id: str,
        coordinator: str,
        model_path: Path,
        collectives: NetworkCollectives,
        sink: MemberSink,
        cache: ShardCache,
        loop: asyncio.AbstractEventLoop,
        on_end: Callable[[], None],
        free_memory: Callable[[], int] = lambda: int(psutil.virtual_memory().available),
        memory_offer: int | None = None,
    ) -> None:
        rank = offer.rank_of(self_id)
        assert rank is not None, "a member run needs a participant"
        self.offer, self.self_id, self.rank = offer, self_id, rank
        self.coordinator = coordinator
        self.slot = offer.participants[rank]
        self.model_path, self.collectives, self.sink = model_path, collectives, sink
        self.cache, self.loop, self.on_end = cache, loop, on_end
        self.free_memory = free_memory  # bytes this device can give without swapping
        self.memory_offer = memory_offer  # spec.capacity.memoryBytes as offered (None: unset)
        self.state = "loading"  # loading -> ready -> running -> ended
        self.threads: list[threading.Thread] = []
        self._aborted = threading.Event()
        self._engine: Engine | None = None
        self._tokenizer: Tokenizer | None = None
        self._reported = 0.0
        self.load_ms = 0.0
        self.resident_bytes = 0
        self.layout = ""  # the weights' layout once loaded: exact, int8, ggml or numpy

    @property
    def node_ids(self) -> list[str]:
        return [p.node_id for p in self.offer.participants]

    def load(self) -> None:
        """Read this rank's slice in a thread; the sink hears ``ready`` or ``load_failed``."""
        self._spawn(self._load, "load")

    def start(self) -> None:
        """Run the generation loop in a thread (once, after ``ready``)."""
        if self.state == "ready":
            self.state = "running"
            self._spawn(self._generate, "generate")

    def abort(self, reason: str) -> None:
        """Stop: waiting collectives raise, nothing more is reported."""
        self._aborted.set()
        self.collectives.abort(reason)
        self._end()

    def join(self, timeout: float) -> bool:
        """Wait for this run's threads; True when none is left running."""
        for t in list(self.threads):
            t.join(timeout)
        return not any(t.is_alive() for t in self.threads)

    def _spawn(self, target: Callable[[], None], what: str) -> None:
        name = f"job:{self.offer.job_id}:{self.self_id}:{what}"
        thread = threading.Thread(target=target, name=name, daemon=True)
        self.threads.append(thread)
        thread.start()

    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn(*args)`` on the loop unless the run was aborted."""

        def call() -> None:
            if not self._aborted.is_set():
                fn(*args)

        try:
            self.loop.call_soon_threadsafe(call)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self._aborted.set()

    def _end(self) -> None:
        if self.state != "ended":
            self.state = "ended"
            self.on_end()

    # -- loading (thread) ---------------------------------------------------------------

    def _load(self) -> None:
        start = time.perf_counter()
        try:
            engine, tokenizer = self._build()
        except Exception as exc:  # thread boundary: any failure becomes a report
            log.info("job %s: loading failed: %s", self.offer.job_id, exc)
            self._post(self._load_failed, f"{type(exc).__name__}: {exc}")
            return
        load_ms = (time.perf_counter() - start) * 1000.0
        resident = engine.weights.nbytes() + engine.cache_k.nbytes + engine.cache_v.nbytes
        self._post(self._loaded, engine, tokenizer, load_ms, resident)

    def _build(self) -> tuple[Engine, Tokenizer]:
        offer = self.offer
        info = self.cache.info(self.model_path)
        share = share_for(offer, self.rank, info.config)
        comm = wrap_wire(self.collectives, offer.wire)  # q80: 8-bit all-reduce contributions
        positions = cache_len(len(offer.prompt_ids), offer.sampling.max_tokens, info.config)
        layout: str | None = None
        if not self.cache.resident(self.model_path, share):
            offered = self.memory_offer
            if offered is not None:  # within an offer, one share at a time: drop kept ones
                self.cache.release_shards()
            choice = self._choose_layout(info.config, positions, offered)
            if choice.problem is not None:  # a plan this device cannot hold: refuse, never swap
                raise MemoryError(choice.problem)
            if choice.note is not None:  # the compact layout fits where the default would not
                layout = choice.layout
                log.info("job %s: %s", offer.job_id, choice.note)
        weights = self.cache.shard(
            self.model_path, info.config, share, self._progress, layout=layout
        )
        self.layout = layout_of(weights)
        return Engine(info.config, weights, comm, positions), info.tokenizer

    def _choose_layout(
        self, config: ModelConfig, positions: int, offered: int | None
    ) -> LayoutChoice:
        """The layout this rank's share fits in (``plans.choose_layout``), costed from the
        file's tensors in each layout the kernels can use, in the memory free and
        offered."""
        records = tensor_records(self.model_path)

        def need(sizes: dict[str, int]) -> int:
            return share_bytes(self.offer, self.rank, model_cost(config, sizes, positions))

        needs = {layout: need(held_sizes(records, layout)) for layout in self.cache.layouts(config)}
        stored = need({r.name: r.file_bytes for r in records})
        default, chosen = self.cache.default_activations(), self.cache.activations_chosen
        free = self.free_memory()
        room = free if offered is None else min(free, offered)
        return choose_layout(needs, room, default, chosen, stored, offered=room < free)

    def _progress(self, fraction: float) -> None:
        if fraction >= 1.0 or fraction - self._reported >= PROGRESS_STEP:
            self._reported = fraction
            self._post(self.sink.progress, self.self_id, fraction)

    def _loaded(self, engine: Engine, tokenizer: Tokenizer, load_ms: float, resident: int) -> None:
        self._engine, self._tokenizer = engine, tokenizer
        self.load_ms, self.resident_bytes = load_ms, resident
        self.state = "ready"
        self.sink.ready(self.self_id, load_ms, resident)

    def _load_failed(self, message: str) -> None:
        self._end()
        self.sink.load_failed(self.self_id, Reason.LOAD_FAILED, message)

    # -- generation (thread) ------------------------------------------------------------

    def _generate(self) -> None:
        assert self._engine is not None
        offer, start, events = self.offer, time.perf_counter(), 0
        prefill_ms = 0.0
        try:
            for event in generate(
                self._engine, list(offer.prompt_ids), offer.sampling, self._tokenizer
            ):
                events, prefill_ms = events + 1, event.prefill_ms
                self._post(self.sink.token, event)
        except CollectiveTimeout as exc:
            self._post(self._failed, Reason.MEMBER_LOST, str(exc))
            return
        except CollectiveError as exc:
            self._post(self._failed, Reason.ABORTED, str(exc))
            return
        except Exception as exc:  # thread boundary
            log.exception("job %s: generation failed", offer.job_id)
            self._post(self._failed, Reason.GENERATION_FAILED, f"{type(exc).__name__}: {exc}")
            return
        wall_ms = (time.perf_counter() - start) * 1000.0
        self._post(self._done, self._stats(wall_ms, prefill_ms, events))

    def _stats(self, wall_ms: float, prefill_ms: float, events: int) -> MemberStats:
        comm = self.collectives
        comm_ms = comm.comm_seconds * 1000.0
        return MemberStats(
            node_id=self.self_id,
            start=self.slot.start,
            end=self.slot.end,
            compute_ms=max(wall_ms - comm_ms, 0.0),
            comm_ms=comm_ms,
            bytes_sent=comm.bytes_sent,
            messages_sent=comm.messages_sent,
            collectives=comm.calls,
            load_ms=self.load_ms,
            resident_bytes=self.resident_bytes,
            layout=self.layout,
            prefill_ms=prefill_ms,
            completion_tokens=events,
        )

    def _done(self, stats: MemberStats) -> None:
        self._end()
        self.sink.done(stats)

    def _failed(self, reason: str, message: str) -> None:
        self._end()
        self.sink.failed(self.self_id, reason, message)
