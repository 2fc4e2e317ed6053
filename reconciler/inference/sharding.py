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

Pipeline stages (``plan_stages``) split the other way: by layers. Stage ``r`` holds the
contiguous layers ``[layer_start, layer_end)`` at full width (every KV head, every MLP
column), so it needs no all-reduce; stage 0 also holds the embedding, the last stage the
final norm and the LM head (with tied embeddings both stages read that one tensor). A
token costs one hop per stage boundary plus one for the logits (``pipeline.py``).
``layer_end=None`` (the default) marks a tensor-parallel or single share: every layer,
embedding and head rows ``[vocab_start, vocab_end)``.
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
    layer_start: int = 0  # pipeline stages: first layer held
    layer_end: int | None = None  # one past the last layer held; None: every layer
    has_embed: bool = True  # holds the token embedding (rows vocab_start..vocab_end)
    has_head: bool = True  # holds the final norm and the LM head

    @property
    def pipelined(self) -> bool:
        """A pipeline stage (from ``plan_stages``): whole layers, no all-reduce."""
        return self.layer_end is not None

    def layers(self, n_layers: int) -> range:
        """Indices of the layers held, out of the model's ``n_layers``."""
        return range(self.layer_start, n_layers if self.layer_end is None else self.layer_end)

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


def plan_stages(config: ModelConfig, layer_counts: list[int]) -> list[RankShare]:
    """One pipeline stage per count (list index = rank): ``layer_counts[r]`` contiguous
    layers at full width; stage 0 embeds, the last stage holds the final norm and head."""
    if not layer_counts:
        raise ValueError("no stages: layer_counts is empty")
    if any(c < 1 for c in layer_counts):
        raise ValueError(f"every stage needs at least one layer: {layer_counts}")
    if sum(layer_counts) != config.n_layers:
        raise ValueError(
            f"stage layer counts {layer_counts} sum to {sum(layer_counts)}, "
            f"but the model has {config.n_layers} layers"
        )
    world, starts = len(layer_counts), [0]
    for c in layer_counts:
        starts.append(starts[-1] + c)
    stages = []
    for r in range(world):
        embed, head = r == 0, r == world - 1
        vocab = config.vocab if embed or head else 0
        stages.append(RankShare(r, world, 0, config.n_kv_heads, config.group, 0,
                                config.hidden_dim, 0, vocab, starts[r], starts[r + 1],
                                embed, head))  # fmt: skip
    return stages


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
