"""Prompt-lookup drafts copy what followed the tail's latest earlier occurrence."""

from __future__ import annotations

from reconciler.inference.drafting import accepted_prefix, prompt_lookup


def test_the_longest_matching_tail_wins() -> None:
    #        0  1  2  3  4  5  6  7  8  9
    tokens = [5, 6, 7, 8, 1, 6, 7, 9, 4, 6, 7]
    # tail (6, 7) occurs at 1 and 5; the latest earlier one (5) is followed by 9, 4
    assert prompt_lookup(tokens, max_draft=2, max_ngram=2) == [9, 4]
    # with a 3-gram tail (9?) no: tail (4, 6, 7) is new, so it falls back to 2-grams
    assert prompt_lookup(tokens, max_draft=3, max_ngram=3) == [9, 4, 6]


def test_a_three_gram_beats_a_more_recent_one_gram() -> None:
    tokens = [1, 2, 3, 50, 60, 3, 70, 1, 2, 3]
    assert prompt_lookup(tokens, max_draft=2) == [50, 60]
    assert prompt_lookup(tokens, max_draft=2, max_ngram=1) == [70, 1]


def test_no_match_no_draft() -> None:
    assert prompt_lookup([1, 2, 3, 4], max_draft=4) == []
    assert prompt_lookup([7], max_draft=4) == []
    assert prompt_lookup([1, 1, 1], max_draft=0) == []


def test_a_copy_that_reaches_the_end_repeats_the_period() -> None:
    assert prompt_lookup([4, 5, 4], max_draft=5) == [5, 4, 5, 4, 5]
    assert prompt_lookup([9, 7, 7, 7], max_draft=4) == [7, 7, 7, 7]
    assert prompt_lookup([1, 2, 3, 1, 2], max_draft=4) == [3, 1, 2, 3]


def test_accepted_prefix_stops_at_the_first_disagreement() -> None:
    assert accepted_prefix([1, 2, 3], [1, 2, 9]) == 2
    assert accepted_prefix([1, 2, 3], [1, 2, 3]) == 3
    assert accepted_prefix([4], [5]) == 0
    assert accepted_prefix([], [5]) == 0
