"""Predicted decode time per token of each plan, from measured inputs (pure arithmetic).

The model, with ``B`` the model's weight bytes, ``s_i`` member i's kernel speed in weight
bytes per second, ``r`` a link's round trip and ``w`` its throughput:

- ``single`` on member c: ``B / s_c``.
- ``tensor`` with shares ``f_i``: every member reads ``f_i B`` bytes, so compute takes
  ``max_i f_i B / s_i`` (shares proportional to speed, capped by memory, equalise it).
  Each token then pays ``2L + 1`` all-to-all rounds (two per layer, one for the LM
  head). In a lock-step all-to-all every member waits for its peers' messages: one
  one-way delay ``r / 2`` of the slowest pair plus ``(N - 1) a / w`` to push ``a``
  activation bytes to each peer.
- ``pipeline`` with ``n_i`` layers on stage i: the stages run one after the other, so
  compute takes ``sum_i n_i L_b / s_i + H / s_l`` (``L_b`` bytes per layer, ``H`` the
  LM head, run by the last stage ``l``: the first stage only looks up one embedding row),
  and the activation goes once around the cycle of stages:
  ``N`` hops of ``r / 2 + a / w``.

Every layer also costs a fixed ``LAYER_OVERHEAD_S`` per token that no split divides:
the attention over the cache, the norms, the kernel calls and the Python around them,
which the self-test's big matrices do not see (``bench/selftest.py`` measures it as the
demo model's decode time beyond its weight bytes over the self-test speed). Every plan
pays it once per layer (tensor members run every layer in lock-step; pipeline stages
run theirs one after another).

Every exchange (an all-to-all round, a pipeline hop) also costs a fixed
``EXCHANGE_OVERHEAD_S`` on top of the link: framing, TLS, the Python on both ends and
thread wake-ups, which ``bench/distributed.py`` measures as ``o`` with no delay injected.

A round of speculative decoding that accepts ``k`` tokens on average divides the
per-token figures by ``k``; callers pass it as ``tokens_per_round``.
"""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.placement.inputs import LinkMeasure, MemberMeasure, ModelCost

EXCHANGE_OVERHEAD_S = 0.8e-3  # bench/distributed.py's ``o`` (two agents, TLS on veth)
LAYER_OVERHEAD_S = 0.25e-3  # bench/selftest.py's per-layer remainder (demo model, int8)


def link_between(links: Sequence[LinkMeasure], a: str, b: str) -> LinkMeasure | None:
    """The measured link between two members, or None when it was never measured."""
    return next((link for link in links if link.joins(a, b)), None)


def single_seconds(model: ModelCost, member: MemberMeasure) -> float:
    """Seconds per token on one member."""
    return model.total_bytes / member.weight_bytes_per_s + layers_overhead(model)


def layers_overhead(model: ModelCost) -> float:
    """The per-token cost of the layers beyond their weight bytes (no plan splits it)."""
    return model.n_layers * LAYER_OVERHEAD_S


def tensor_seconds(
    model: ModelCost,
    members: Sequence[MemberMeasure],
    fractions: Sequence[float],
    links: Sequence[LinkMeasure],
) -> float:
    """Seconds per token of tensor parallelism with the given shares (same order)."""
    compute = max(
        f * model.total_bytes / m.weight_bytes_per_s
        for m, f in zip(members, fractions, strict=True)
    )
    compute += layers_overhead(model)
    if len(members) == 1:
        return compute
    pairs = [_link(links, a.node_id, b.node_id) for a in members for b in members if a != b]
    delay = max(p.rtt_s for p in pairs) / 2.0
    push = (len(members) - 1) * model.activation_bytes / min(p.bytes_per_s for p in pairs)
    rounds = 2 * model.n_layers + 1
    return compute + rounds * (delay + push + EXCHANGE_OVERHEAD_S)


def pipeline_seconds(
    model: ModelCost,
    stages: Sequence[MemberMeasure],
    layers: Sequence[int],
    links: Sequence[LinkMeasure],
) -> float:
    """Seconds per token of a pipeline; ``stages[0]`` is the coordinator (it embeds), the
    last stage runs the LM head."""
    compute = model.head_bytes / stages[-1].weight_bytes_per_s + layers_overhead(model)
    compute += sum(
        n * model.layer_bytes / s.weight_bytes_per_s for s, n in zip(stages, layers, strict=True)
    )
    if len(stages) == 1:
        return compute
    hops = [
        _link(links, stages[i].node_id, stages[(i + 1) % len(stages)].node_id)
        for i in range(len(stages))
    ]
    return compute + sum(
        h.rtt_s / 2.0 + model.activation_bytes / h.bytes_per_s + EXCHANGE_OVERHEAD_S for h in hops
    )


def _link(links: Sequence[LinkMeasure], a: str, b: str) -> LinkMeasure:
    link = link_between(links, a, b)
    if link is None:
        raise KeyError(f"no measured link between {a} and {b}")
    return link
