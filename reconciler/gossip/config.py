"""Tunables of the gossip machine, with defaults for a LAN pool of 2..64 devices.

Defaults and why (memberlist's LAN profile, scaled down for a fast LAN):

- ``probe_interval=0.4`` s, ``probe_timeout=0.2`` s: one member probed per interval;
  after the timeout ``indirect_checks=3`` members are asked to probe it too; if no
  ack arrives before the interval ends, the member becomes SUSPECT.
- ``suspicion_mult=3``: the minimum suspicion timeout is
  ``suspicion_mult * max(1, log10(n)) * probe_interval`` (1.2 s up to 10 members,
  2.2 s at 64). Lifeguard: it starts at ``suspicion_max_timeout_mult`` times that and
  shrinks towards the minimum as independent suspicions confirm it (expected
  confirmations ``suspicion_mult - 2``, none below that many other members).
  A 2- or 3-node crash is thus detected and the ring re-formed in < 2.5 s (worst
  case about 6 probe intervals plus one gossip hop); suspects keep their ring
  position, so a false suspicion never reshuffles shards.
- ``gossip_interval=0.2`` s to ``gossip_nodes=3`` random members; each broadcast is
  sent ``retransmit_mult * ceil(log10(n + 1))`` times (8 at 64 members).
- ``push_pull_interval=2.0`` s: full state exchange with one random member; the same
  tick also retries seeds and one DEAD member (this is how partitions heal). Once the
  ring has converged and nobody is lost, the exchange with a live member runs only
  every ``converged_push_pull_interval=10.0`` s (ring reports ride on every message and
  a disagreement starts an exchange at once): an idle pool sleeps.
- ``piggyback_bytes=16384``: broadcast budget per message (links are TCP).
- ``max_members=256``: the member table's cap (self included); ``max_hints=64``:
  nodes heard of from third parties and not yet confirmed by themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.gossip.ring import DEFAULT_SHARD_COLUMNS, Weighting


@dataclass(frozen=True, slots=True)
class GossipConfig:
    """Configuration of one ``GossipProtocol``."""

    pool_id: str = "pool"
    shard_columns: int = DEFAULT_SHARD_COLUMNS
    weighting: Weighting = "equal"
    probe_interval: float = 0.4
    probe_timeout: float = 0.2
    indirect_checks: int = 3
    suspicion_mult: int = 3
    suspicion_max_timeout_mult: int = 4
    gossip_interval: float = 0.2
    gossip_nodes: int = 3
    retransmit_mult: int = 4
    push_pull_interval: float = 2.0
    converged_push_pull_interval: float = 10.0
    piggyback_bytes: int = 16384
    max_members: int = 256
    max_hints: int = 64
