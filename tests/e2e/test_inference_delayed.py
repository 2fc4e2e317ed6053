"""Two devices a few milliseconds apart (a delay line between their bridges) still run a
job together under each plan, with or without prompt lookup, and give the same greedy
tokens as one device alone in exact mode."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conftest import NETNS
from delayline import DelayLine
from lan import Lan
from pool_steps import TINY, inference, two_device_pool

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(not NETNS, reason="needs root and network namespaces"),
]

EXACT = {"MESHNET_ACTIVATIONS": "exact", "MESHNET_THREADS": "1"}



def test_a_pool_across_a_slow_link_gives_the_local_tokens_under_each_plan(
    lan: Lan, delayed_lan: Callable[..., DelayLine]
) -> None:
    delayed_lan(2.5)  # a 5 ms round trip between br0 and br1
    admin, member = two_device_pool(lan, TINY, bridges=("br0", "br1"), env=EXACT)
    for model in (str(TINY), "demo"):
        prompt = ["--model", model, "--prompt", "The garden gate", "--max-tokens", "6"]
        local = inference(admin, *prompt, "--local", "--activations", "exact", "--threads", "1")
        for plan, draft in (("tensor", "0"), ("pipeline", "0"), ("tensor", "4")):
            pooled = inference(member, *prompt, "--parallelism", plan, "--draft-tokens", draft)
            assert pooled["tokenIds"] == local["tokenIds"], (model, plan, draft)
            assert pooled["text"] == local["text"]
            assert isinstance(pooled["plan"], dict) and pooled["plan"]["kind"] == plan
            members = pooled["members"]
            assert isinstance(members, list) and len(members) == 2
            assert all(m["bytesSent"] > 0 for m in members)  # the tokens did cross the line
