"""Which layout a member holds its share in, by its free memory (``plans.choose_layout``)."""

from __future__ import annotations

from reconciler.jobs.plans import choose_layout, memory_problem

MiB = 1 << 20
NEEDS = {"exact": 500 * MiB, "int8": 600 * MiB}  # a Q4_0 share: int8 holds 1.2x exact
FILE = 450 * MiB


def test_the_default_is_kept_where_it_fits() -> None:
    choice = choose_layout(NEEDS, 600 * MiB, "int8", False, FILE)
    assert (choice.layout, choice.note, choice.problem) == ("int8", None, None)


def test_unchosen_int8_that_does_not_fit_becomes_exact_and_says_why() -> None:
    choice = choose_layout(NEEDS, 550 * MiB, "int8", False, FILE)
    assert choice.layout == "exact" and choice.problem is None
    assert choice.note == (
        "exact activations: the int8 layout needs 600.00 MiB, 550.00 MiB is free, "
        "the exact layout 500.00 MiB"
    )


def test_chosen_activations_are_never_overridden() -> None:
    choice = choose_layout(NEEDS, 550 * MiB, "int8", True, FILE)
    assert choice.layout == "int8" and choice.note is None
    assert choice.problem == (
        "this share needs 600.00 MiB in the int8 layout (450.00 MiB in the file) "
        "with its KV cache, 550.00 MiB is free"
    )


def test_nothing_that_fits_is_refused_naming_the_smaller_layout() -> None:
    choice = choose_layout(NEEDS, 480 * MiB, "int8", False, FILE)
    assert choice.layout == "exact" and choice.note is None
    assert choice.problem is not None and "needs 500.00 MiB in the exact layout" in choice.problem


def test_exact_by_default_never_grows_to_int8() -> None:
    choice = choose_layout(NEEDS, 480 * MiB, "exact", False, FILE)
    assert choice.layout == "exact" and "500.00 MiB in the exact layout" in str(choice.problem)


def test_the_numpy_kernels_have_one_layout() -> None:
    needs = {"numpy": 3 << 30}
    assert choose_layout(needs, 4 << 30, "int8", False, FILE).layout == "numpy"
    problem = choose_layout(needs, 2 << 30, "int8", False, FILE).problem
    assert problem == (
        "this share needs 3.00 GiB in the numpy layout (450.00 MiB in the file) "
        "with its KV cache, 2.00 GiB is free"
    )


def test_a_share_that_fits_has_no_problem() -> None:
    assert memory_problem(10, 10) is None
    assert memory_problem(11 << 10, 10 << 10) == (
        "this share needs 11.0 KiB with its KV cache, 10.0 KiB is free"
    )


GGML = {**NEEDS, "ggml": 470 * MiB}  # the file's own blocks: the smallest of the three


def test_unchosen_int8_that_does_not_fit_takes_the_files_own_blocks_first() -> None:
    """ggml keeps 8-bit activations and holds the least: it comes before exact."""
    choice = choose_layout(GGML, 550 * MiB, "int8", False, FILE)
    assert (choice.layout, choice.problem) == ("ggml", None)
    assert choice.note == (
        "the file's own blocks (ggml): the int8 layout needs 600.00 MiB, 550.00 MiB is "
        "free, the ggml layout 470.00 MiB"
    )


def test_chosen_int8_may_move_to_ggml_never_to_exact() -> None:
    needs = {"exact": 400 * MiB, "int8": 600 * MiB, "ggml": 470 * MiB}
    assert choose_layout(needs, 500 * MiB, "int8", True, FILE).layout == "ggml"
    refused = choose_layout(needs, 450 * MiB, "int8", True, FILE)
    assert refused.layout == "ggml" and "470.00 MiB in the ggml layout" in str(refused.problem)
    assert choose_layout(needs, 450 * MiB, "int8", False, FILE).layout == "exact"


def test_nothing_that_fits_names_the_smallest_allowed_layout() -> None:
    choice = choose_layout(GGML, 400 * MiB, "int8", False, FILE)
    assert choice.layout == "ggml" and choice.note is None
    assert "needs 470.00 MiB in the ggml layout (450.00 MiB in the file)" in str(choice.problem)


def test_the_ggml_kernels_have_one_layout() -> None:
    assert choose_layout({"ggml": 470 * MiB}, 500 * MiB, "int8", False, FILE).layout == "ggml"
