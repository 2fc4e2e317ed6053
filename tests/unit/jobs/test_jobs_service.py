"""JobServices on a fake in-memory network against the single-rank oracle."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from reconciler.gossip.ring import Ring
from reconciler.inference import (
    Engine,
    SamplingParams,
    TokenEvent,
    full_share,
    load_model_info,
    load_shard,
)
from reconciler.jobs.errors import JobFailed, Reason
from reconciler.jobs.results import JobRequest, JobResult

MODEL = "tiny-qwen2-hf"  # biases, 3 KV heads: uneven splits give uneven head counts
PROMPT = "Hello world, this is a tiny"
SPLITS = {
    "tp2-uneven": {"a": (0, 5000), "b": (5000, 8192)},
    "tp3-uneven": {"a": (0, 1000), "b": (1000, 4500), "c": (4500, 8192)},
}


def _oracle(path: Path, params: SamplingParams) -> tuple[list[int], list[int], str]:
    info = load_model_info(path)
    ids = info.tokenizer.encode(PROMPT)
    engine = Engine(info.config, load_shard(path, info.config, full_share(info.config)))
    events = list(engine.generate(ids, params, info.tokenizer))
    return ids, [e.token_id for e in events], "".join(e.text for e in events)


def _run_job(
    fake_net: Any,
    ring: Ring,
    prompt: list[int],
    params: SamplingParams,
    coordinator: str,
    scenario: Callable[[Any], None] = lambda net: None,
    on_token: Callable[[Any, TokenEvent], None] | None = None,
    after_failure: Callable[[Any], Awaitable[None]] | None = None,
    **kw: Any,
) -> tuple[JobResult | JobFailed, Any, dict[str, list[float]]]:
    progress: dict[str, list[float]] = {}

    async def main() -> tuple[JobResult | JobFailed, Any]:
        net = fake_net(asyncio.get_running_loop())
        for slot in ring.members:
            net.add(slot.node_id, **kw)
        scenario(net)
        request = JobRequest("job-1", MODEL, prompt, params, ring)
        try:
            return await net.services[coordinator].run(
                request,
                lambda node, f: progress.setdefault(node, []).append(f),
                (lambda ev: on_token(net, ev)) if on_token else None,
            ), net
        except JobFailed as exc:
            if after_failure is not None:
                await after_failure(net)
            return exc, net
        finally:
            net.close()

    outcome, net = asyncio.run(main())
    return outcome, net, progress


@pytest.mark.parametrize("split", sorted(SPLITS))
def test_job_matches_single_rank(fake_net: Any, ring_of: Any, models: Path, split: str) -> None:
    params = SamplingParams(max_tokens=8, ignore_eos=True)
    prompt, want_ids, want_text = _oracle(models / MODEL, params)
    ring = ring_of(SPLITS[split])
    result, net, progress = _run_job(fake_net, ring, prompt, params, coordinator="b")
    assert isinstance(result, JobResult), result
    assert result.token_ids == want_ids
    assert result.output == want_text
    assert (result.prompt_tokens, result.completion_tokens) == (len(prompt), 8)
    assert result.missing_stats == []
    world = len(ring.members)
    for member, slot in zip(result.members, ring.members, strict=True):
        assert (member.node_id, member.start, member.end) == (slot.node_id, slot.start, slot.end)
        assert member.completion_tokens == 8 and member.bytes_sent > 0
        assert member.messages_sent == member.collectives * (world - 1)  # one round each
    assert {node: f[-1] for node, f in progress.items()} == {s.node_id: 1.0 for s in ring.members}
    assert all(min(f) < 1.0 for f in progress.values())  # LOAD_PROGRESS while loading
    assert result.tokens_per_second and result.time_to_first_token_ms > 0
    assert all(not svc.runs and not svc.coordinations for svc in net.services.values())


def test_sampled_job_agrees_and_a_second_job_reuses_resident_slices(
    fake_net: Any, ring_of: Any, models: Path
) -> None:
    params = SamplingParams(max_tokens=6, temperature=1.2, top_p=0.9, seed=5, ignore_eos=True)
    prompt, want_ids, _ = _oracle(models / MODEL, params)
    ring = ring_of(SPLITS["tp2-uneven"])

    async def main() -> tuple[JobResult, JobResult, int]:
        net = fake_net(asyncio.get_running_loop())
        for slot in ring.members:
            net.add(slot.node_id)
        try:
            first = await net.services["a"].run(JobRequest("j1", MODEL, prompt, params, ring))
            second = await net.services["a"].run(JobRequest("j2", MODEL, prompt, params, ring))
            return first, second, sum(s.cache.loads for s in net.services.values())
        finally:
            net.close()

    first, second, loads = asyncio.run(main())
    assert first.token_ids == second.token_ids == want_ids
    assert loads == 2  # one slice per member, read once for both jobs


def test_single_member_ring(fake_net: Any, ring_of: Any, models: Path) -> None:
    params = SamplingParams(max_tokens=5, ignore_eos=True)
    prompt, want_ids, _ = _oracle(models / MODEL, params)
    result, _, _ = _run_job(fake_net, ring_of({"a": (0, 8192)}), prompt, params, "a")
    assert isinstance(result, JobResult) and result.token_ids == want_ids
    assert result.members[0].bytes_sent == 0


def _drop_c_at_first_token(call_member_lost: bool) -> Callable[[Any, TokenEvent], None]:
    def on_token(net: Any, event: TokenEvent) -> None:
        if event.index == 0:
            net.dead.add("c")
            if call_member_lost:
                for node in ("a", "b"):
                    net.loop.call_soon(net.services[node].member_lost, "c")

    return on_token


@pytest.mark.parametrize("gossip_reports", [True, False], ids=["member_lost", "silent"])
def test_member_lost_mid_job_fails_fast(
    fake_net: Any,
    ring_of: Any,
    live_job_threads: Any,
    gossip_reports: bool,
) -> None:
    params = SamplingParams(max_tokens=200, ignore_eos=True)
    freed: list[bool] = []

    async def survivors_free_their_ranks(net: Any) -> None:
        """Before anyone calls close(): once the ABORTs arrived, a and b hold no run, and
        their threads end."""
        await net.settled()
        freed.append(not net.services["a"].runs and not net.services["b"].runs)
        threads = live_job_threads({"a", "b"})
        await asyncio.to_thread(lambda: [t.join(5.0) for t in threads])
        freed.append(not live_job_threads({"a", "b"}))

    outcome, _, _ = _run_job(
        fake_net,
        ring_of(SPLITS["tp3-uneven"]),
        [1, 5, 9, 12],
        params,
        coordinator="a",
        on_token=_drop_c_at_first_token(gossip_reports),
        after_failure=survivors_free_their_ranks,
        collective_timeout=30.0 if gossip_reports else 1.0,  # gossip alone must be enough
    )
    assert isinstance(outcome, JobFailed)
    assert outcome.reason == Reason.MEMBER_LOST
    # Gossip's report ends the job at once (the 30 s collective timeout never fires);
    # without it, the survivors' 1 s collective timeout names the silent member.
    expected = "member c was lost" if gossip_reports else "no contribution from c"
    assert expected in outcome.message
    assert freed == [True, True]
    assert live_job_threads() == []


def test_missing_model_fails_with_its_reason(fake_net: Any, ring_of: Any) -> None:
    def resolver_on_b(ref: str) -> Path:
        raise FileNotFoundError(f"no model {ref} here")

    def scenario(net: Any) -> None:
        net.services["b"].model_resolver = resolver_on_b

    outcome, _, _ = _run_job(
        fake_net, ring_of(SPLITS["tp2-uneven"]), [1, 2], SamplingParams(), "a", scenario
    )
    assert isinstance(outcome, JobFailed) and outcome.reason == Reason.MODEL_NOT_FOUND
    assert "b:" in outcome.message


def test_member_with_another_ring_refuses(fake_net: Any, ring_of: Any) -> None:
    other = ring_of({"a": (0, 100), "b": (100, 8192)})

    def scenario(net: Any) -> None:
        net.services["b"].ring_view = lambda: other

    outcome, _, _ = _run_job(
        fake_net, ring_of(SPLITS["tp2-uneven"]), [1, 2], SamplingParams(), "a", scenario
    )
    assert isinstance(outcome, JobFailed) and outcome.reason == Reason.RING_MISMATCH


def test_member_that_never_answers_times_out(fake_net: Any, ring_of: Any) -> None:
    def scenario(net: Any) -> None:
        net.dead.add("b")

    outcome, _, _ = _run_job(
        fake_net, ring_of(SPLITS["tp2-uneven"]), [1, 2], SamplingParams(), "a", scenario,
        ready_timeout=0.5,
    )  # fmt: skip
    assert isinstance(outcome, JobFailed) and outcome.reason == Reason.LOAD_TIMEOUT
    assert "b" in outcome.message


def test_coordinator_outside_the_ring_refuses(fake_net: Any, ring_of: Any) -> None:
    async def main() -> None:
        net = fake_net(asyncio.get_running_loop())
        svc = net.add("z")
        with pytest.raises(JobFailed) as info:
            await svc.run(JobRequest("j", MODEL, [1], SamplingParams(), ring_of({"a": (0, 8192)})))
        assert info.value.reason == Reason.NOT_IN_RING

    asyncio.run(main())


def test_a_prompt_longer_than_the_model_fails_the_job(fake_net: Any, ring_of: Any) -> None:
    outcome, _, _ = _run_job(
        fake_net, ring_of(SPLITS["tp2-uneven"]), [5] * 300, SamplingParams(), "a"
    )
    assert isinstance(outcome, JobFailed) and outcome.reason == Reason.PROMPT_TOO_LONG
    assert "context of 256" in outcome.message  # refused up front, not midway


def test_speculative_job_matches_single_rank_in_fewer_rounds(
    fake_net: Any, ring_of: Any, models: Path
) -> None:
    """draft_tokens travel in the offer: every rank runs the same verify passes."""
    plain = SamplingParams(max_tokens=24, ignore_eos=True)
    prompt, want_ids, want_text = _oracle(models / MODEL, plain)
    params = SamplingParams(max_tokens=24, ignore_eos=True, draft_tokens=8)
    result, _, _ = _run_job(fake_net, ring_of(SPLITS["tp2-uneven"]), prompt, params, "a")
    assert isinstance(result, JobResult), result
    assert (result.token_ids, result.output) == (want_ids, want_text)
    assert 0 < result.decode_rounds < 23  # some passes accepted drafts
    assert result.tokens_per_round == 23 / result.decode_rounds
    status = result.status_fields()
    assert status["decode_rounds"] == result.decode_rounds and status["tokens_per_round"] > 1


def test_a_q80_job_sends_fewer_bytes_and_every_rank_stays_in_step(
    fake_net: Any, ring_of: Any, models: Path
) -> None:
    """The wire format travels in the offer: a member wrapping its collectives otherwise
    would send frames of another op and the job would fail."""
    params = SamplingParams(max_tokens=8, ignore_eos=True)
    prompt, want_ids, _ = _oracle(models / MODEL, params)
    ring = ring_of(SPLITS["tp2-uneven"])

    async def main() -> tuple[JobResult, JobResult]:
        net = fake_net(asyncio.get_running_loop())
        for slot in ring.members:
            net.add(slot.node_id)
        try:
            f32 = await net.services["a"].run(JobRequest("j1", MODEL, prompt, params, ring))
            q80 = await net.services["a"].run(
                JobRequest("j2", MODEL, prompt, params, ring, wire="q80")
            )
            return f32, q80
        finally:
            net.close()

    f32, q80 = asyncio.run(main())
    assert f32.token_ids == want_ids and q80.completion_tokens == 8
    for a, b in zip(f32.members, q80.members, strict=True):
        assert a.collectives == b.collectives  # the same calls, smaller contributions
        # the tiny model's rows are 2-3 blocks: frame headers weigh more than at dim 576
        assert b.bytes_sent < 0.5 * a.bytes_sent


def test_a_cancelled_job_aborts_its_members(
    fake_net: Any, ring_of: Any, live_job_threads: Any
) -> None:
    """The Job is deleted mid-run (its task cancelled): every member hears JOB_ABORT and
    lets go of its rank; nothing is left running."""
    ring = ring_of(SPLITS["tp2-uneven"])
    params = SamplingParams(max_tokens=200, ignore_eos=True)

    async def main() -> tuple[bool, int, bool]:
        net = fake_net(asyncio.get_running_loop())
        for slot in ring.members:
            net.add(slot.node_id)
        first = asyncio.Event()
        task = asyncio.create_task(
            net.services["a"].run(
                JobRequest("j", MODEL, [1, 5, 9], params, ring), None, lambda event: first.set()
            )
        )
        try:
            await first.wait()
            task.cancel()
            cancelled = False
            try:
                await task
            except asyncio.CancelledError:
                cancelled = True
            await net.settled()
            runs = sum(len(svc.runs) + len(svc.machine.ranks) for svc in net.services.values())
            threads = live_job_threads()
            await asyncio.to_thread(lambda: [t.join(5.0) for t in threads])
            return cancelled, runs, not live_job_threads()
        finally:
            net.close()

    assert asyncio.run(main()) == (True, 0, True)
