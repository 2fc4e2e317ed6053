"""Split a model over the ring: which heads, MLP columns and vocabulary rows each rank holds.

The ring gives every member a column range over ``shard_columns`` (e.g. 8192), possibly
uneven. Each rank receives a share of each weight family as close to its ring fraction
as the model's structure allows (largest remainder, contiguous and in rank order):

- KV-head groups: a rank holds KV heads ``[kv_start, kv_end)`` and the ``G`` query heads
  of each of them, so attention never needs another rank's keys. With fewer KV heads than
  ranks, or tiny fractions, a rank may get zero heads; it then contributes zeros to the
  attention all-reduce and still holds MLP columns and vocabulary rows.
- MLP hidden columns ``[ffn_start, ffn_end)``, in whole quantization blocks: the down
  projection is split along its input columns, and GGUF blocks run along them (32
  elements, 256 for K-quants). The split unit is 256 columns when the hidden width is a
  multiple of 256, else 32 when it is a multiple of 32, else 1 (``ffn_unit``); the ring's
  fractions are rounded to whole units by largest remainder, so a rank's share of gate,
  up and down is whole blocks of every format and nothing is dequantized to cut it.
- The O projection is split along its input columns too, by KV-head groups, which
  need not fall on block boundaries (3 heads of 64 = 192 columns): a rank holding O
  columns ``[a, b)`` keeps the whole blocks covering them and feeds zeros in the extra
  columns, which adds nothing (at most one block per side).
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
    unit = ffn_unit(config.hidden_dim)
    ffn = [
        (a * unit, b * unit)
        for a, b in _bounds(_largest_remainder(fractions, config.hidden_dim // unit))
    ]
    voc = _bounds(_largest_remainder(fractions, config.vocab))
    world = len(column_ranges)
    return [RankShare(r, world, *kv[r], config.group, *ffn[r], *voc[r]) for r in range(world)]


def ffn_unit(hidden_dim: int) -> int:
    """MLP columns per split unit: the largest of 256 and 32 dividing ``hidden_dim``, else 1."""
    for unit in (256, 32):
        if hidden_dim % unit == 0:
            return unit
    return 1


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
