"""One speculative round: draft by prompt lookup, verify in one forward pass, keep what
the model agrees with.

The engine holds every token of ``history`` but the last one. A round feeds
``[last] + drafts`` as one multi-token pass (``Engine.prefill(..., all_logits=True)``
runs at the current position); row ``i`` of its logits is what plain greedy decoding
would see after ``last`` and the first ``i`` drafts, so its argmax is the model's own
next token whenever those drafts were right. The round yields the longest run of
drafts that match those argmaxes plus the next argmax (at least one token: a round is
never worse than a plain step in tokens), then rewinds the engine to the accepted
length, so rejected drafts are forgotten. Greedy output is therefore the same as plain
decoding's, token for token. With int8 activations that needs each row's logits to be
the same bits whether it ran alone or with others (a last-bit difference can move an
activation's quantization step): the onnxruntime graphs give every attention call a
scratch row for that (``GraphBuilder.attention``), and the tests check the bits. In
exact mode a one-row matmul may differ from a many-row one in the last bit, which moves
no argmax that is not an exact tie.

With tensor parallelism the verify pass all-gathers only each row's (value, id) winner
(``Engine._greedy_logits``), and costs the same number of collectives as a plain step.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from reconciler.inference.drafting import accepted_prefix, prompt_lookup
from reconciler.inference.stepping import Stepper


def verify_round(engine: Stepper, history: Sequence[int], max_draft: int) -> list[int]:
    """The tokens after ``history`` that one pass can vouch for (1 to ``max_draft + 1``).

    ``engine`` must hold ``history[:-1]`` (its position is ``len(history) - 1``) and be
    greedy; afterwards it holds every returned token but the last."""
    start = engine.pos
    room = engine.cache_len - start - 1  # positions left after feeding history[-1]
    draft = prompt_lookup(history, max(0, min(max_draft, room)))
    logits = engine.prefill([history[-1], *draft], all_logits=True)  # [1 + K, V]
    picks = [int(i) for i in np.argmax(logits, axis=-1)]  # [1 + K] the model's choices
    accepted = accepted_prefix(draft, picks)
    engine.rewind(start + 1 + accepted)
    return picks[: accepted + 1]
