"""Prompt-lookup drafting: guess the next tokens by finding the sequence's tail earlier in
the sequence and copying what followed it there (no second model needed).

Text that repeats (code, quotes, lists, a summary of the prompt) is where this pays: a
speculative round then verifies several drafted tokens in one distributed pass. A draft
that is wrong costs only the rejected positions, and greedy output stays the same.
"""

from __future__ import annotations

from collections.abc import Sequence


def prompt_lookup(
    tokens: Sequence[int], max_draft: int, max_ngram: int = 3, min_ngram: int = 1
) -> list[int]:
    """Up to ``max_draft`` tokens that followed the latest earlier occurrence of the
    sequence's last n tokens, trying the longest n first; [] when nothing matches.

    A copy that reaches the end of the sequence goes on with the tokens it has just
    drafted (an overlapping copy, as in LZ77): the match then shows a period, and the
    draft repeats it. ``[.., 7, 7, 7]`` drafts ``[7] * max_draft``, not one 7."""
    if max_draft <= 0:
        return []
    n_tokens = len(tokens)
    for n in range(min(max_ngram, n_tokens - 1), min_ngram - 1, -1):
        tail = list(tokens[n_tokens - n :])
        for start in range(n_tokens - n - 1, -1, -1):  # latest match first, not the tail itself
            if list(tokens[start : start + n]) == tail:
                return _copy(tokens, start + n, max_draft)
    return []


def _copy(tokens: Sequence[int], start: int, count: int) -> list[int]:
    """``count`` tokens from ``start`` on, continuing into the copy itself past the end."""
    out: list[int] = []
    for i in range(start, start + count):
        out.append(tokens[i] if i < len(tokens) else out[i - len(tokens)])
    return out


def accepted_prefix(draft: Sequence[int], verified: Sequence[int]) -> int:
    """How many drafted tokens the verifying pass agrees with: ``verified[i]`` is the
    model's own choice at draft position ``i`` (greedy), so the first disagreement ends
    the accepted run."""
    count = 0
    for guess, choice in zip(draft, verified, strict=False):
        if guess != choice:
            break
        count += 1
    return count
