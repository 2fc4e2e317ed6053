"""This device's own figures for the plan: the kernel self-test (once per agent process,
off the event loop) and free memory (psutil's ``available``, at most what the member
offers in ``spec.capacity.memoryBytes``; at start and then on the pool runtime's
publishing tick, so that measuring wakes the agent no extra time), handed to a pool's
gossip machine, which states them to the pool."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

import psutil

from reconciler.inference.selftest import SelfTest, run_selftest

log = logging.getLogger("meshnet.measure")

SELFTEST_ENV = "MESHNET_SELFTEST"  # "0": skip the kernel self-test (speed unmeasured)

_lock = threading.Lock()
_result: list[SelfTest | None] = []


Offer = Callable[[], int | None]  # a member's offered memory (None: no limit)


def no_offer() -> int | None:
    """No offer set: the device's free memory is the limit."""
    return None


def free_memory_bytes(offer: int | None = None) -> int:
    """Memory the system can give without swapping (MemAvailable), at most ``offer``."""
    available = int(psutil.virtual_memory().available)
    return available if offer is None else min(available, offer)


def selftest_once() -> SelfTest | None:
    """The kernel self-test, run at most once per process (blocking; thread-safe).
    None when skipped (``MESHNET_SELFTEST=0``) or when it failed (logged)."""
    with _lock:
        if not _result:
            _result.append(_run())
        return _result[0]


def _run() -> SelfTest | None:
    if os.environ.get(SELFTEST_ENV, "1").strip() == "0":
        return None
    try:
        result = run_selftest()
    except Exception as exc:  # an unmeasured speed, never a dead agent
        log.warning("kernel self-test failed: %s", exc)
        return None
    log.info(
        "kernel self-test: %.2f GB/s of weights (%s, %s activations, %d threads, %d runs)",
        result.weight_bytes_per_s / 1e9, result.kernels, result.activations,
        result.threads, result.runs,
    )  # fmt: skip
    return result


def self_measures(fields: dict[str, Any], offer: int | None = None) -> dict[str, Any]:
    """This device's published figures, how its kernel speed was measured, and the
    memory it offers (None: no offer, its free memory is the limit)."""
    result = _result[0] if _result else None
    selftest = None
    if result is not None:
        selftest = {"kernels": result.kernels, "activations": result.activations,
                    "threads": result.threads, "runs": result.runs}  # fmt: skip
    return {
        "speedBytesPerSecond": fields.get("speedBytesPerSecond"),
        "freeMemoryBytes": fields.get("freeMemoryBytes"),
        "memoryOfferBytes": offer,
        "selftest": selftest,
    }


SetLocal = Callable[[float | None, int | None], None]


async def measure_at_start(
    set_local: SetLocal, after: Callable[[], None], offer: Offer = no_offer
) -> None:
    """Free memory now; the self-test's speed (and free memory) once it is known.
    ``after`` runs after each update (the driver flushes the machine)."""
    refresh_free_memory(set_local, after, offer)
    result = await asyncio.to_thread(selftest_once)
    speed = result.weight_bytes_per_s if result is not None else None
    set_local(speed, free_memory_bytes(offer()))
    after()


def refresh_free_memory(
    set_local: SetLocal, after: Callable[[], None], offer: Offer = no_offer
) -> None:
    """Free memory as of now, at most ``offer()`` (the kernel speed stays as measured)."""
    set_local(None, free_memory_bytes(offer()))
    after()
