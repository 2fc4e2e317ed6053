"""Prometheus metrics at ``GET /metrics`` (text format), read from the store at scrape
time: a custom collector turns what the agent already publishes (peers, ring, beacon
and gossip counters) and the Jobs' statuses into metric families, so no protocol module
keeps metrics of its own.

Counters derived from Jobs (tokens, compute and communication time) sum the Jobs the
store still holds: deleting Jobs lowers them, which Prometheus reads as a reset.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from manifests import Job
from reconciler.controlplane.dashboard_auth import Viewer, require_viewer
from reconciler.controlplane.state import AppState
from reconciler.observed import beacons_key, gossip_key, peers_key, ring_key
from reconciler.store import Store

PEER_STATES = ("ONLINE", "SUSPECT", "OFFLINE")
JOB_PHASES = ("Pending", "Scheduled", "Running", "Succeeded", "Failed")
TPS_BUCKETS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0)
TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
router = APIRouter()


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request, viewer: Annotated[Viewer, Depends(require_viewer)]) -> Response:
    """Prometheus text format, read from the store now."""
    state: AppState = request.app.state.meshnet
    registry = new_registry(state.store, lambda: viewer.pools(state))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


class PoolCollector(Collector):
    """Metric families for the pools a control plane serves, read at each scrape."""

    def __init__(self, store: Callable[[], Store], pools: Callable[[], list[str]]) -> None:
        self._store, self._pools = store, pools

    def collect(self) -> Iterator[Metric]:
        store, pools = self._store(), self._pools()
        yield from membership_metrics(store, pools)
        yield from job_metrics([j for j in store.list("Job") if isinstance(j, Job)], pools)


def membership_metrics(store: Store, pools: list[str]) -> Iterator[Metric]:
    peers = GaugeMetricFamily("meshnet_peers", "Peers by gossip state.", labels=["pool", "state"])
    sent = CounterMetricFamily("meshnet_beacons_sent", "Beacons sent.", labels=["pool"])
    received = CounterMetricFamily("meshnet_beacons_received", "Beacons received.", labels=["pool"])
    dropped = CounterMetricFamily("meshnet_beacons_dropped", "Beacons dropped, by reason.",
                                  labels=["pool", "reason"])  # fmt: skip
    rounds = CounterMetricFamily("meshnet_gossip_rounds", "Gossip protocol rounds (timer ticks).",
                                 labels=["pool"])  # fmt: skip
    messages = CounterMetricFamily("meshnet_gossip_messages", "Gossip messages.",
                                   labels=["pool", "direction"])  # fmt: skip
    epoch = GaugeMetricFamily("meshnet_ring_epoch", "The ring's epoch.", labels=["pool"])
    members = GaugeMetricFamily("meshnet_ring_members", "Members in the ring.", labels=["pool"])
    converged = GaugeMetricFamily("meshnet_ring_converged", "1 once every member agrees.",
                                  labels=["pool"])  # fmt: skip
    converge = GaugeMetricFamily("meshnet_ring_converge_seconds",
                                 "Time from the ring's last change to its convergence.",
                                 labels=["pool"])  # fmt: skip
    circuits = GaugeMetricFamily("meshnet_relay_circuits", "Peer links through a relay.",
                                 labels=["pool"])  # fmt: skip
    relay_bytes = CounterMetricFamily("meshnet_relay_bytes", "Bytes over relayed peer links.",
                                      labels=["pool", "direction"])  # fmt: skip
    for pool in pools:
        rows = _list(store.get_observed(peers_key(pool)))
        states = Counter(str(row.get("status", "")) for row in rows)
        for state in sorted({*PEER_STATES, *states}):
            peers.add_metric([pool, state], states.get(state, 0))
        beacons = _dict(store.get_observed(beacons_key(pool)))
        sent.add_metric([pool], _num(beacons.get("sent")))
        received.add_metric([pool], _num(beacons.get("received")))
        for reason, count in sorted(_dict(beacons.get("drops")).items()):
            dropped.add_metric([pool, str(reason)], _num(count))
        gossip = _dict(store.get_observed(gossip_key(pool)))
        rounds.add_metric([pool], _num(gossip.get("rounds")))
        messages.add_metric([pool, "sent"], _num(gossip.get("messagesSent")))
        messages.add_metric([pool, "received"], _num(gossip.get("messagesReceived")))
        if gossip.get("convergeSeconds") is not None:
            converge.add_metric([pool], _num(gossip["convergeSeconds"]))
        ring = _dict(store.get_observed(ring_key(pool)))
        epoch.add_metric([pool], _num(ring.get("epoch")))
        members.add_metric([pool], len(_list(ring.get("members"))))
        converged.add_metric([pool], 1.0 if ring.get("converged") else 0.0)
        relayed = [r for r in rows if r.get("route") == "relay"]
        circuits.add_metric([pool], sum(1 for r in relayed if r.get("linkConnected")))
        relay_bytes.add_metric([pool, "sent"], sum(_num(r.get("bytesSent")) for r in relayed))
        relay_bytes.add_metric(
            [pool, "received"], sum(_num(r.get("bytesReceived")) for r in relayed)
        )
    yield from (peers, sent, received, dropped, rounds, messages, epoch, members, converged,
                converge, circuits, relay_bytes)  # fmt: skip


def job_metrics(jobs: list[Job], pools: list[str]) -> Iterator[Metric]:
    phases = GaugeMetricFamily("meshnet_jobs", "Jobs by phase.", labels=["pool", "phase"])
    tokens = CounterMetricFamily("meshnet_tokens_generated", "Tokens generated by Jobs.",
                                 labels=["pool"])  # fmt: skip
    compute = CounterMetricFamily("meshnet_member_compute_seconds",
                                  "Time members spent computing Jobs.",
                                  labels=["pool", "node_id"])  # fmt: skip
    comm = CounterMetricFamily("meshnet_member_communication_seconds",
                               "Time members spent in collectives (exchanging partial results).",
                               labels=["pool", "node_id"])  # fmt: skip
    for pool in pools:
        mine = [j for j in jobs if j.spec.pool == pool]
        counted = Counter(str(j.status.phase or "Pending") for j in mine)
        for phase in sorted({*JOB_PHASES, *counted}):
            phases.add_metric([pool, phase], counted.get(phase, 0))
        tokens.add_metric([pool], sum(j.status.completion_tokens or 0 for j in mine))
        per_member: dict[str, list[float]] = {}
        for job in mine:
            for member in job.status.members:
                totals = per_member.setdefault(member.node_id, [0.0, 0.0])
                totals[0] += member.compute_ms / 1000.0
                totals[1] += member.comm_ms / 1000.0
        for node_id, (compute_s, comm_s) in sorted(per_member.items()):
            compute.add_metric([pool, node_id], compute_s)
            comm.add_metric([pool, node_id], comm_s)
    yield from (phases, tokens, compute, comm)
    yield _histogram("meshnet_job_tokens_per_second", "Decode speed of finished Jobs.",
                     jobs, pools, TPS_BUCKETS, lambda j: j.status.tokens_per_second)  # fmt: skip
    yield _histogram("meshnet_job_time_to_first_token_seconds", "Latency to the first token.",
                     jobs, pools, TTFT_BUCKETS, _ttft_seconds)  # fmt: skip


def _ttft_seconds(job: Job) -> float | None:
    ms = job.status.time_to_first_token_ms
    return None if ms is None else ms / 1000.0


def _histogram(name: str, doc: str, jobs: list[Job], pools: list[str],
               buckets: tuple[float, ...], value: Callable[[Job], float | None]) -> Metric:  # fmt: skip
    family = HistogramMetricFamily(name, doc, labels=["pool"])
    for pool in pools:
        values = [v for j in jobs if j.spec.pool == pool and (v := value(j)) is not None]
        cumulative = [(_le(b), sum(1 for v in values if v <= b)) for b in buckets]
        family.add_metric([pool], [*cumulative, ("+Inf", len(values))], sum(values))
    return family


def _le(bound: float) -> str:
    return str(float(bound))


def new_registry(store: Callable[[], Store], pools: Callable[[], list[str]]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PoolCollector(store, pools))
    return registry


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _list(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}

