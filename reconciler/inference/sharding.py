"""Split a model over the ring: which heads, MLP columns and vocabulary rows each rank holds.

The ring gives every member a column range over ``shard_columns`` (e.g. 8192), possibly
uneven. Each rank receives a share of each weight family as close to its ring fraction
as the model's structure allows (largest remainder, contiguous and in rank order):

- KV-head groups: a rank holds KV heads ``[kv_start, kv_end)`` and the ``G`` query heads
  of each of them, so attention never needs another rank's keys. With fewer KV heads than
  ranks, or tiny fractions, a rank may get zero heads; it then contributes zeros to the
  attention all-reduce and still holds MLP columns and vocabulary rows.
- MLP hidden columns ``[ffn_start, ffn_end)``: any split, no divisibility rule.
- Vocabulary rows ``[vocab_start, vocab_end)`` of the embedding and the LM head.

Splits are named by direction: column split "all-to-sharded" (Q, K, V, gate, up, LM head)
and row split "sharded-to-all" (O, down) followed by an all-reduce.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.inference.config import ModelConfig


@dataclass(frozen=True)
class RankShare:
    """What one rank holds of every layer."""

    rank: int
    world_size: int
    kv_start: int
    kv_end: int
    group: int  # G query heads per KV head
    ffn_start: int
    ffn_end: int
    vocab_start: int
    vocab_end: int

    @property
    def head_start(self) -> int:
        """First query head held."""
        return self.kv_start * self.group

    @property
    def head_end(self) -> int:
        """One past the last query head held."""
        return self.kv_end * self.group

    @property
    def n_kv_heads(self) -> int:
        """Kl: KV heads held."""
        return self.kv_end - self.kv_start

    @property
    def n_heads(self) -> int:
        """Hl: query heads held."""
        return self.head_end - self.head_start


def full_share(config: ModelConfig) -> RankShare:
    """The single-rank share: everything."""
    return plan_shares(config, [(0, 1)], 1)[0]


def plan_shares(
    config: ModelConfig, column_ranges: list[tuple[int, int]], shard_columns: int
) -> list[RankShare]:
    """One share per ring range, in list order (list index = rank)."""
    fractions = _fractions(column_ranges, shard_columns)
    kv = _bounds(_largest_remainder(fractions, config.n_kv_heads))
    ffn = _bounds(_largest_remainder(fractions, config.hidden_dim))
    voc = _bounds(_largest_remainder(fractions, config.vocab))
    world = len(column_ranges)
    return [RankShare(r, world, *kv[r], config.group, *ffn[r], *voc[r]) for r in range(world)]


def _fractions(column_ranges: list[tuple[int, int]], shard_columns: int) -> list[int]:
    """Column counts per rank, after checking the ranges tile ``[0, shard_columns)``."""
    if not column_ranges:
        raise ValueError("no column ranges: the ring is empty")
    expected = 0
    for start, end in column_ranges:
        if start != expected or end <= start:
            raise ValueError(
                f"column ranges must be contiguous, non-empty and start at 0: {column_ranges}"
            )
        expected = end
    if expected != shard_columns:
        raise ValueError(f"column ranges end at {expected}, not at {shard_columns}")
    return [end - start for start, end in column_ranges]


def _largest_remainder(weights: list[int], total: int) -> list[int]:
    """Integer counts summing to ``total`` proportional to ``weights`` (Hamilton's method)."""
    denom = sum(weights)
    exact = [w * total for w in weights]  # numerators over denom, exact integers
    counts = [e // denom for e in exact]
    left = total - sum(counts)
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] % denom), i))
    for i in order[:left]:
        counts[i] += 1
    return counts


def _bounds(counts: list[int]) -> list[tuple[int, int]]:
    """Contiguous ``(start, end)`` ranges from counts."""
    out: list[tuple[int, int]] = []
    start = 0
    for c in counts:
        out.append((start, start + c))
        start += c
    return out
