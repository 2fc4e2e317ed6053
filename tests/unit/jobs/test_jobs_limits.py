"""Prompt limits: a job beyond the model's context or a frame limit is refused before any
member is offered it or loads anything; the KV cache is sized to prompt + max tokens."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from reconciler.frames import MAX_FRAME
from reconciler.inference import SamplingParams, load_model_info
from reconciler.inference.config import ModelConfig
from reconciler.inference.model import Engine
from reconciler.jobs import messages as m
from reconciler.jobs.errors import JobFailed, Reason
from reconciler.jobs.limits import cache_len, prompt_limits, prompt_problem
from reconciler.jobs.messages import MAX_MESSAGE
from reconciler.jobs.results import JobRequest

MODEL = "tiny-llama.gguf"  # context 256


def _config(models: Path, **changes: Any) -> ModelConfig:
    config = load_model_info(models / MODEL).config
    return ModelConfig(**{**config.__dict__, **changes})


def test_prompt_and_max_tokens_beyond_the_context_names_both_limits(models: Path) -> None:
    config = _config(models)
    assert prompt_problem(200, 56, config) is None  # exactly the context
    problem = prompt_problem(200, 57, config)
    assert problem is not None
    assert "200 tokens" in problem and "maxTokens 57" in problem and "context of 256" in problem


def test_the_offer_frame_bounds_the_prompt_even_with_a_huge_context(models: Path) -> None:
    config = _config(models, max_seq=10_000_000)
    offer = prompt_limits(config).offer_tokens
    assert 11 * offer < MAX_MESSAGE  # every id of a full offer fits in one message
    assert prompt_problem(offer, 1, config) is None
    problem = prompt_problem(offer + 1, 1, config)
    assert problem is not None and "job frame limit" in problem and str(offer) in problem


def test_a_prefill_step_must_fit_a_tensor_frame_only_across_members(models: Path) -> None:
    config = _config(models, max_seq=10_000_000, dim=4096)
    step = prompt_limits(config, world_size=2).step_tokens
    assert step is not None and step * 4096 * 4 < MAX_FRAME < (step + 1) * 4096 * 4 + 1024
    assert prompt_problem(step + 1, 1, config, world_size=1) is None
    problem = prompt_problem(step + 1, 1, config, world_size=2)
    assert problem is not None and "2 members" in problem and str(step) in problem
    assert prompt_problem(step + 1, 1, config, world_size=2, prefill_chunk=512) is None


def test_cache_len_is_prompt_plus_max_tokens_capped_by_the_context(models: Path) -> None:
    config = _config(models)
    assert cache_len(10, 6, config) == 16
    assert cache_len(250, 100, config) == 256


def test_a_too_long_prompt_is_refused_before_any_offer_or_load(fake_net: Any, ring_of: Any) -> None:
    ring = ring_of({"a": (0, 4096), "b": (4096, 8192)})
    params = SamplingParams(max_tokens=8)

    async def main() -> tuple[JobFailed, Any]:
        net = fake_net(asyncio.get_running_loop())
        for node in ("a", "b"):
            net.add(node)
        try:
            with pytest.raises(JobFailed) as failed:
                await net.services["a"].run(JobRequest("long", MODEL, [5] * 250, params, ring))
            return failed.value, net
        finally:
            net.close()

    error, net = asyncio.run(main())
    assert error.reason == Reason.PROMPT_TOO_LONG
    assert "250 tokens" in error.message and "context of 256" in error.message
    assert net.control_frames == 0  # no member was offered the job
    assert all(svc.cache.loads == 0 and not svc.runs for svc in net.services.values())


def test_members_size_their_kv_cache_to_the_job(
    fake_net: Any, ring_of: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.jobs import member

    sizes: list[int] = []

    class Watched(Engine):
        def __init__(self, *args: Any, **kw: Any) -> None:
            super().__init__(*args, **kw)
            sizes.append(self.cache_len)

    monkeypatch.setattr(member, "Engine", Watched)
    ring = ring_of({"a": (0, 4096), "b": (4096, 8192)})
    params = SamplingParams(max_tokens=4, ignore_eos=True)

    async def main() -> None:
        net = fake_net(asyncio.get_running_loop())
        for node in ("a", "b"):
            net.add(node)
        try:
            await net.services["a"].run(JobRequest("short", MODEL, [5, 6, 7], params, ring))
        finally:
            net.close()

    asyncio.run(main())
    assert sizes == [3 + 4, 3 + 4]  # one Engine per member, 3 prompt + 4 new positions


def test_the_longest_allowed_prompt_fits_one_offer(models: Path) -> None:
    offer_tokens = prompt_limits(_config(models, max_seq=10_000_000)).offer_tokens
    members = tuple(m.Participant(f"node-{i:058d}", i * 128, (i + 1) * 128) for i in range(64))
    sampling = SamplingParams(max_tokens=1, stop=tuple("s" * 100 for _ in range(16)))
    offer = m.JobOffer(
        "j" * 63, 2**64 - 1, "/" + "m" * 400, (2**31 - 1,) * offer_tokens, sampling,
        2**31, "h" * 64, 8192, members,
    )  # fmt: skip
    payload = m.encode(offer)
    assert len(payload) <= MAX_MESSAGE
    decoded = m.decode(payload)
    assert isinstance(decoded, m.JobOffer) and len(decoded.prompt_ids) == offer_tokens
