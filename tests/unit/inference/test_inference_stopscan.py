"""Stop strings are matched on decoded text across token boundaries and never leak."""

from __future__ import annotations

from reconciler.inference.generate import _StopScanner


def run(deltas: list[str], stops: tuple[str, ...]) -> tuple[str, bool]:
    scanner, out = _StopScanner(stops), ""
    for delta in deltas:
        text, stopped = scanner.push(delta)
        out += text
        if stopped:
            return out, True
    return out + scanner.flush(), False


def test_stop_split_over_three_tokens_is_found_and_not_emitted() -> None:
    assert run(["Hello ", "wo", "rl", "d!", " more"], ("world",)) == ("Hello ", True)


def test_a_held_back_prefix_that_does_not_complete_is_released() -> None:
    scanner = _StopScanner(("END",))
    assert scanner.push("abc E") == ("abc ", False)  # "E" might start END
    assert scanner.push("N") == ("", False)
    assert scanner.push("D?") == ("", True)
    scanner = _StopScanner(("END",))
    scanner.push("abc E")
    assert scanner.push("Nx") == ("ENx", False)


def test_earliest_of_several_stops_wins_and_text_before_it_is_kept() -> None:
    assert run(["a<", "/s>b\n\nc"], ("\n\n", "</s>")) == ("a", True)


def test_without_a_stop_everything_is_emitted() -> None:
    assert run(["one", " two"], ("zzz",)) == ("one two", False)
