"""The member state table and its incarnation rules."""

from __future__ import annotations

import itertools

import pytest

from reconciler.gossip.states import (
    TRANSITIONS,
    Input,
    MemberState,
    display_status,
    next_state,
)

A, S, D, L = MemberState.ALIVE, MemberState.SUSPECT, MemberState.DEAD, MemberState.LEFT


def test_probe_timeout_makes_alive_suspect_and_suspicion_timeout_makes_it_dead() -> None:
    assert next_state(A, Input.PROBE_TIMEOUT, 0) is S
    assert next_state(S, Input.SUSPICION_TIMEOUT, 0) is D


def test_suspicion_is_refuted_only_by_a_higher_incarnation() -> None:
    assert next_state(S, Input.ALIVE_MSG, held_inc=3, msg_inc=3) is None
    assert next_state(S, Input.ALIVE_MSG, held_inc=3, msg_inc=4) is A


def test_an_ack_does_not_clear_a_suspicion() -> None:
    assert next_state(S, Input.ACK, 0) is S


@pytest.mark.parametrize("inp", [Input.SUSPECT_MSG, Input.DEAD_MSG, Input.LEAVE_MSG])
def test_older_suspect_dead_leave_are_ignored(inp: Input) -> None:
    assert next_state(A, inp, held_inc=5, msg_inc=4) is None
    assert next_state(A, inp, held_inc=5, msg_inc=5) is not None


def test_dead_and_left_members_come_back_only_with_a_higher_incarnation() -> None:
    for state in (D, L):
        assert next_state(state, Input.ALIVE_MSG, held_inc=2, msg_inc=2) is None
        assert next_state(state, Input.ALIVE_MSG, held_inc=2, msg_inc=3) is A
        assert next_state(state, Input.SUSPECT_MSG, held_inc=2, msg_inc=9) is None


def test_revoked_always_ends_dead() -> None:
    for state in MemberState:
        assert next_state(state, Input.REVOKED, 0) is D


def test_message_inputs_need_an_incarnation() -> None:
    assert next_state(A, Input.SUSPECT_MSG, 0) is None


def test_table_only_names_known_states_and_inputs() -> None:
    pairs = set(itertools.product(MemberState, Input))
    assert set(TRANSITIONS) <= pairs
    assert all(isinstance(v, MemberState) for v in TRANSITIONS.values())


def test_display_status() -> None:
    assert [display_status(s) for s in (A, S, D, L)] == ["ONLINE", "SUSPECT", "OFFLINE", "OFFLINE"]
