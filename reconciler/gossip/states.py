"""Member states of SWIM membership and the transitions between them, as data.

The table below is the whole state machine of one member entry (h2 style:
``TRANSITIONS[(state, input)] -> new_state``). A pair that is missing means "no
change": the input is ignored in that state. Inputs that carry an incarnation
number are first filtered by ``INCARNATION_RULES`` (memberlist semantics):

- ``alive_msg(i)`` is accepted only if ``i`` is strictly greater than what we hold,
  so a suspicion can only be refuted by the member itself bumping its incarnation;
- ``suspect_msg(i)``, ``dead_msg(i)`` and ``leave_msg(i)`` are accepted if ``i`` is
  at least what we hold.

Local inputs (``ack``, ``probe_timeout``, ``suspicion_timeout``, ``revoked``) carry
no incarnation and are always accepted.

    ALIVE   --probe_timeout / suspect_msg-->   SUSPECT
    SUSPECT --alive_msg(higher inc)-->         ALIVE
    SUSPECT --suspicion_timeout / dead_msg-->  DEAD
    any     --leave_msg-->                     LEFT
    DEAD|LEFT --alive_msg(higher inc)-->       ALIVE   (restart / rejoin)
    any     --revoked-->                       DEAD    (and never re-admitted)
"""

from __future__ import annotations

import enum
from collections.abc import Callable


class MemberState(enum.Enum):
    """State of one member entry as seen by the local node."""

    ALIVE = "alive"
    SUSPECT = "suspect"
    DEAD = "dead"
    LEFT = "left"


class Input(enum.Enum):
    """Inputs that drive a member entry's state."""

    ACK = "ack"
    PROBE_TIMEOUT = "probe_timeout"
    SUSPECT_MSG = "suspect_msg"
    ALIVE_MSG = "alive_msg"
    DEAD_MSG = "dead_msg"
    SUSPICION_TIMEOUT = "suspicion_timeout"
    LEAVE_MSG = "leave_msg"
    REVOKED = "revoked"


A, S, D, L = MemberState.ALIVE, MemberState.SUSPECT, MemberState.DEAD, MemberState.LEFT

TRANSITIONS: dict[tuple[MemberState, Input], MemberState] = {
    (A, Input.ACK): A,
    (A, Input.PROBE_TIMEOUT): S,
    (A, Input.SUSPECT_MSG): S,
    (A, Input.ALIVE_MSG): A,
    (A, Input.DEAD_MSG): D,
    (A, Input.LEAVE_MSG): L,
    (A, Input.REVOKED): D,
    (S, Input.ACK): S,
    (S, Input.SUSPECT_MSG): S,
    (S, Input.ALIVE_MSG): A,
    (S, Input.DEAD_MSG): D,
    (S, Input.SUSPICION_TIMEOUT): D,
    (S, Input.LEAVE_MSG): L,
    (S, Input.REVOKED): D,
    (D, Input.ALIVE_MSG): A,
    (D, Input.LEAVE_MSG): L,
    (D, Input.REVOKED): D,
    (L, Input.ALIVE_MSG): A,
    (L, Input.REVOKED): D,
}


def _gt(msg_inc: int, held_inc: int) -> bool:
    return msg_inc > held_inc


def _ge(msg_inc: int, held_inc: int) -> bool:
    return msg_inc >= held_inc


INCARNATION_RULES: dict[Input, Callable[[int, int], bool]] = {
    Input.ALIVE_MSG: _gt,
    Input.SUSPECT_MSG: _ge,
    Input.DEAD_MSG: _ge,
    Input.LEAVE_MSG: _ge,
}

DISPLAY_STATUS: dict[MemberState, str] = {
    A: "ONLINE",
    S: "SUSPECT",
    D: "OFFLINE",
    L: "OFFLINE",
}

IN_RING: frozenset[MemberState] = frozenset({A, S})
"""States whose members hold a ring position (a suspect is still alive in SWIM)."""


def next_state(
    state: MemberState, inp: Input, held_inc: int, msg_inc: int | None = None
) -> MemberState | None:
    """Return the new state for ``inp``, or None when the input is ignored.

    ``msg_inc`` is the incarnation carried by a message input; it is checked
    against ``held_inc`` with ``INCARNATION_RULES`` before the table is used.
    """
    rule = INCARNATION_RULES.get(inp)
    if rule is not None and (msg_inc is None or not rule(msg_inc, held_inc)):
        return None
    return TRANSITIONS.get((state, inp))


def display_status(state: MemberState) -> str:
    """Peers listing status: ONLINE | SUSPECT | OFFLINE."""
    return DISPLAY_STATUS[state]
