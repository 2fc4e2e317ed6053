"""Names that come from the network, made safe to store, log and show.

A device name arrives in join requests (beacon and HTTP) and in presence beacons,
chosen by whoever sent them. ``printable`` drops control and format characters
(terminal escapes, carriage returns, bidirectional overrides) and bounds the length;
the renderers escape Rich markup separately (``meshctl.render.safe``).
"""

from __future__ import annotations

import unicodedata

NAME_LIMIT = 64
UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def printable(text: str, limit: int = NAME_LIMIT) -> str:
    """``text`` without control/format characters, whitespace runs made one space,
    cut to ``limit`` characters ("?" when nothing printable is left)."""
    kept = "".join(
        " " if ch.isspace() else ch
        for ch in text
        if ch.isspace() or unicodedata.category(ch) not in UNPRINTABLE
    )
    return " ".join(kept.split())[:limit] or "?"
