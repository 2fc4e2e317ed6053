"""The arithmetic of bench/distributed.py's "model" section: per-round costs measured on
this machine, and the tokens/s each plan would reach on a real LAN.

A decoded token costs compute, plus for each network exchange a fixed overhead and a
share of the link's round trip, plus the bytes over the link's throughput:

    single:    t = c
    tensor:    t = c / N + X * (o + k * rtt) + bytes_tp(N) / bw
    pipeline:  t = c + N * (o + rtt / 2) + N * hop_bytes / bw

``c`` compute ms per token of one member alone (one thread), ``X`` exchanges per token
of the tensor plan, ``o`` overhead of one exchange (measured with no injected delay),
``k`` round trips one exchange waits (measured: the slope of ms/token against the
injected round trip, divided by X), ``bytes_tp(N)`` the bytes one member sends per token
(each all-reduce sends its partial to each of the N - 1 others; on Wi-Fi every member's
bytes share one medium), ``hop_bytes`` one activation vector of ``dim`` floats.
Pure functions, no I/O.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class Link:
    name: str
    rtt_ms: float
    bytes_per_ms: float  # throughput
    shared_medium: bool  # Wi-Fi: all members' bytes share the air


MIN_RTTS_PER_EXCHANGE = 0.5
GIGABIT = Link("Gigabit Ethernet", 0.2, 110e6 / 1000.0, False)
WIFI = Link("Wi-Fi", 5.0, 10e6 / 1000.0, True)


@dataclass(frozen=True)
class Costs:
    """What the bench measured (ms unless said)."""

    compute_ms: float  # c: one member alone, one thread, per token
    exchanges: int  # X: tensor plan, per token
    overhead_ms: float  # o: per exchange, no injected delay
    rtts_per_exchange: float  # k
    tp_bytes_per_token: float  # one member's bytes per token at N = 2
    hop_bytes: float  # pipeline: one activation vector


def overhead_per_exchange(tp_ms_per_token: float, compute_ms: float, exchanges: int) -> float:
    """o from the tensor plan's ms/token with no injected delay (compute split in two)."""
    return max(0.0, (tp_ms_per_token - compute_ms / 2.0) / exchanges)


def rtts_per_exchange(points: list[tuple[float, float]], exchanges: int) -> float:
    """k: least-squares slope of (rtt ms, ms per token) over the exchanges per token, at
    least 0.5 (an exchange waits at least one one-way trip; a loaded machine's noise can
    hide the slope of small delays)."""
    if len(points) < 2 or len({rtt for rtt, _ in points}) < 2:
        return 1.0  # unmeasured: assume a full round trip per exchange
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    slope /= sum((x - mx) ** 2 for x in xs)
    return max(MIN_RTTS_PER_EXCHANGE, slope / exchanges)


def predict(costs: Costs, link: Link, plan: str, devices: int) -> tuple[float, str]:
    """Tokens/s of ``plan`` on ``devices`` members joined by ``link``, and the arithmetic."""
    c, n = costs.compute_ms, devices
    if plan == "single":
        return 1000.0 / c, f"c = {c:.1f} ms"
    if plan == "tensor":
        per_member = costs.tp_bytes_per_token * (n - 1)
        wire = per_member * (n if link.shared_medium else 1) / link.bytes_per_ms
        latency = costs.exchanges * (costs.overhead_ms + costs.rtts_per_exchange * link.rtt_ms)
        t = c / n + latency + wire
        text = (f"{c:.1f}/{n} + {costs.exchanges} x ({costs.overhead_ms:.3f} + "
                f"{costs.rtts_per_exchange:.2f} x {link.rtt_ms:g}) + {wire:.2f} = {t:.1f} ms")  # fmt: skip
        return 1000.0 / t, text
    if plan == "pipeline":
        wire = n * costs.hop_bytes / link.bytes_per_ms
        t = c + n * (costs.overhead_ms + link.rtt_ms / 2.0) + wire
        text = (f"{c:.1f} + {n} x ({costs.overhead_ms:.3f} + {link.rtt_ms:g}/2) + {wire:.2f}"
                f" = {t:.1f} ms")  # fmt: skip
        return 1000.0 / t, text
    raise ValueError(f"no prediction for plan {plan!r}")
