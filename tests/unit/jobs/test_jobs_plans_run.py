"""Jobs run by each plan on a fake network give the single-rank oracle's greedy tokens
(exact activations, f32 wire); measurements steer the plan; the status says which."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from reconciler.inference import Engine, SamplingParams, full_share, load_model_info, load_shard
from reconciler.jobs.errors import JobFailed, Reason
from reconciler.jobs.results import JobRequest, JobResult
from reconciler.placement import LinkMeasure, MemberMeasure
from reconciler.placement.ringplan import MeasureSource
from tests.unit.jobs.conftest import FakeNet

MODEL = "tiny-qwen2-hf"  # 2 layers: a pipeline of two stages holds one layer each
PROMPT = "Hello world, this is a tiny"
RING = {"a": (0, 4096), "b": (4096, 8192)}
PARAMS = SamplingParams(max_tokens=8, ignore_eos=True)
heard: list[tuple[Any, str, int]] = []  # on_plan calls of the last run: plan, wire, frames


@pytest.fixture(autouse=True)
def exact(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESHNET_ACTIVATIONS", "exact")


class Measured:
    """A MeasureSource with fixed figures."""

    def __init__(self, members: list[MemberMeasure], links: list[LinkMeasure]) -> None:
        self.members, self.links = members, links

    def measures(self) -> tuple[list[MemberMeasure], list[LinkMeasure]]:
        return list(self.members), list(self.links)


def _measured(rtt_ms: float, b_speed: float = 1e9, memory: int = 1 << 30) -> Measured:
    members = [MemberMeasure("a", 1e9, memory), MemberMeasure("b", b_speed, memory)]
    return Measured(members, [LinkMeasure("a", "b", rtt_ms / 1000.0, 1.25e9)])


def _oracle(models: Path, params: SamplingParams = PARAMS) -> tuple[list[int], list[int]]:
    info = load_model_info(models / MODEL)
    ids = info.tokenizer.encode(PROMPT)
    engine = Engine(info.config, load_shard(models / MODEL, info.config, full_share(info.config)))
    return ids, [e.token_id for e in engine.generate(ids, params, info.tokenizer)]


def _run(
    fake_net: Any,
    ring_of: Any,
    prompt: list[int],
    parallelism: str = "auto",
    measures: MeasureSource | None = None,
    wire: str = "auto",
    params: SamplingParams = PARAMS,
    free: dict[str, int] | None = None,
) -> tuple[JobResult | JobFailed, int]:
    ring = ring_of(RING)
    heard.clear()

    async def main() -> tuple[JobResult | JobFailed, int]:
        net = fake_net(asyncio.get_running_loop())
        for node in RING:
            room = (free or {}).get(node, 1 << 40)
            net.add(node, measures=measures, free_memory=lambda room=room: room)
        request = JobRequest(
            "job-1", MODEL, prompt, params, ring, wire=wire, parallelism=parallelism
        )
        try:
            on_plan = lambda plan, wire: heard.append((plan, wire, net.control_frames))  # noqa: E731
            return await net.services["a"].run(request, None, None, on_plan), net.control_frames
        except JobFailed as exc:
            return exc, net.control_frames
        finally:
            net.close()

    return asyncio.run(main())


@pytest.mark.parametrize("parallelism", ["single", "tensor", "pipeline"])
def test_every_plan_gives_the_oracle_s_greedy_tokens(
    fake_net: Any, ring_of: Any, models: Path, parallelism: str
) -> None:
    prompt, want = _oracle(models)
    result, frames = _run(fake_net, ring_of, prompt, parallelism)
    assert isinstance(result, JobResult), result
    assert result.token_ids == want
    assert result.plan is not None and result.plan.kind == parallelism
    assert heard == [(result.plan, "f32", 0)]  # heard before anything was offered
    status = result.status_fields()
    assert status["plan"]["kind"] == parallelism and status["plan"]["reason"]
    assert status["decode_rounds"] == 7 and status["tokens_per_round"] == 1.0
    if parallelism == "single":
        assert [m.node_id for m in result.members] == ["a"] and frames == 0  # b never heard
    if parallelism == "pipeline":  # the coordinator is stage 0
        assert [(m["node_id"], m["layers"]) for m in status["members"]] == [
            ("a", [0, 1]),
            ("b", [1, 2]),
        ]


def test_a_slow_link_keeps_the_job_on_the_coordinator(
    fake_net: Any, ring_of: Any, models: Path
) -> None:
    prompt, want = _oracle(models)
    result, frames = _run(fake_net, ring_of, prompt, measures=_measured(rtt_ms=20.0))
    assert isinstance(result, JobResult) and result.token_ids == want
    assert result.plan is not None and result.plan.kind == "single" and frames == 0
    plan = result.status_fields()["plan"]
    assert plan["predictedTokensPerSecond"] > plan["alternatives"]["tensor"]


def test_a_fast_link_splits_columns_by_measured_speed(
    fake_net: Any, ring_of: Any, models: Path
) -> None:
    prompt, want = _oracle(models)
    measures = _measured(rtt_ms=0.0001, b_speed=0.5e9)
    result, _ = _run(fake_net, ring_of, prompt, "tensor", measures)
    assert isinstance(result, JobResult) and result.token_ids == want
    columns = [(m.node_id, m.start, m.end) for m in result.members]
    assert columns == [("a", 0, 5461), ("b", 5461, 8192)]  # 2:1, not the ring's 1:1
    assert result.plan is not None and result.plan.predicted_tok_s


def test_a_model_that_fits_on_no_member_runs_as_a_pipeline_over_a_slow_link(
    fake_net: Any, ring_of: Any, models: Path
) -> None:
    prompt, want = _oracle(models)
    too_small = _measured(rtt_ms=20.0, memory=230_000)  # the model + KV cache is ~278 kB
    result, _ = _run(fake_net, ring_of, prompt, measures=too_small)
    assert isinstance(result, JobResult) and result.token_ids == want
    assert result.plan is not None and result.plan.kind == "pipeline"
    assert "single" not in result.plan.alternatives and "beats tensor" in result.plan.reason
    assert result.layers == [(0, 1), (1, 2)]


class Broken:
    """A MeasureSource that fails: the job is planned as if nothing were measured."""

    def measures(self) -> tuple[list[MemberMeasure], list[LinkMeasure]]:
        raise RuntimeError("gossip is gone")


def test_a_failing_measure_source_plans_as_unmeasured(
    fake_net: Any, ring_of: Any, models: Path
) -> None:
    prompt, want = _oracle(models)
    result, _ = _run(fake_net, ring_of, prompt, measures=Broken())
    assert isinstance(result, JobResult) and result.token_ids == want
    assert result.plan is not None and result.plan.kind == "tensor"
    assert "no measurements" in result.plan.reason and result.plan.predicted_tok_s is None


def test_no_plan_that_fits_fails_before_anything_is_offered(
    fake_net: Any, ring_of: Any, models: Path
) -> None:
    prompt, _ = _oracle(models)
    tiny_memory = _measured(rtt_ms=1.0, memory=1000)
    failed, frames = _run(fake_net, ring_of, prompt, "single", tiny_memory)
    assert isinstance(failed, JobFailed) and failed.reason == Reason.NO_PLAN
    assert "no single plan fits" in failed.message and frames == 0


def test_q80_on_the_wire_sends_fewer_bytes(fake_net: Any, ring_of: Any, models: Path) -> None:
    prompt, _ = _oracle(models)
    sent = {}
    for wire in ("f32", "q80"):
        result, _ = _run(fake_net, ring_of, prompt, "tensor", wire=wire)
        assert isinstance(result, JobResult) and len(result.token_ids) == 8
        assert result.status_fields()["plan"]["wire"] == wire
        sent[wire] = sum(m.bytes_sent for m in result.members)
    assert sent["q80"] < sent["f32"]


def test_speculative_rounds_keep_the_tokens_and_take_fewer_passes(
    fake_net: Any, ring_of: Any, models: Path
) -> None:
    params = SamplingParams(max_tokens=12, ignore_eos=True)
    prompt, want = _oracle(models, params)
    prompt = prompt + want + prompt + want[:4]  # text that repeats: drafts get accepted
    _, want = _oracle_ids(models, prompt, params)
    drafted = SamplingParams(max_tokens=12, ignore_eos=True, draft_tokens=4)
    result, _ = _run(fake_net, ring_of, prompt, "tensor", params=drafted)
    assert isinstance(result, JobResult) and result.token_ids == want
    status = result.status_fields()
    assert status["decode_rounds"] <= 0.6 * 12 and status["tokens_per_round"] > 1.0


def _oracle_ids(
    models: Path, prompt: list[int], params: SamplingParams
) -> tuple[list[int], list[int]]:
    info = load_model_info(models / MODEL)
    engine = Engine(info.config, load_shard(models / MODEL, info.config, full_share(info.config)))
    return prompt, [e.token_id for e in engine.generate(prompt, params, info.tokenizer)]


@pytest.mark.parametrize("short", ["a", "b"])
def test_a_member_refuses_a_share_it_cannot_hold(
    fake_net: Any, ring_of: Any, models: Path, short: str
) -> None:
    """A plan (measured wrong, or a hostile coordinator's) never makes a device swap or
    die: the share is refused before anything is read, and the job fails cleanly."""
    prompt, _ = _oracle(models)
    failed, _ = _run(fake_net, ring_of, prompt, "pipeline", free={short: 50_000})
    assert isinstance(failed, JobFailed) and failed.reason == Reason.LOAD_FAILED
    if short == "a":  # the coordinator's own log and message say why
        assert "in the numpy layout" in failed.message and "48.8 KiB is free" in failed.message


def test_a_resident_share_runs_again_with_little_memory_left(
    fake_net: Any, ring_of: Any, models: Path
) -> None:
    """The share a member already holds needs no more memory (its pages count as used)."""
    prompt, want = _oracle(models)
    ring, room = ring_of(RING), {"a": 1 << 40, "b": 1 << 40}

    async def main() -> list[JobResult]:
        net = fake_net(asyncio.get_running_loop())
        for node in RING:
            net.add(node, free_memory=lambda node=node: room[node])
        try:
            first = await net.services["a"].run(JobRequest("j1", MODEL, prompt, PARAMS, ring))
            room.update(a=0, b=0)
            second = await net.services["a"].run(JobRequest("j2", MODEL, prompt, PARAMS, ring))
            return [first, second]
        finally:
            net.close()

    assert [r.token_ids for r in asyncio.run(main())] == [want, want]


def test_only_the_chosen_members_hear_of_the_job(
    fake_net: type[FakeNet], ring_of: Any, models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """c has not published measurements: the plan leaves it out, and it is offered nothing."""
    prompt, want = _oracle(models)
    ring = ring_of({"a": (0, 3000), "b": (3000, 6000), "c": (6000, 8192)})
    measures = _measured(rtt_ms=0.0001)
    heard_by_c: list[bytes] = []

    async def main() -> JobResult:
        net = fake_net(asyncio.get_running_loop())
        for node in ("a", "b", "c"):
            net.add(node, measures=measures)
        c = net.services["c"]
        monkeypatch.setattr(c, "on_control", lambda src, payload: heard_by_c.append(payload))
        try:
            return await net.services["a"].run(
                JobRequest("j", MODEL, prompt, PARAMS, ring, parallelism="tensor")
            )
        finally:
            net.close()

    result = asyncio.run(main())
    assert result.token_ids == want and heard_by_c == []
    assert [m.node_id for m in result.members] == ["a", "b"]


def _held_activations(
    fake_net: Any,
    ring_of: Any,
    prompt: list[int],
    room: int,
    room_of: dict[str, int] | None = None,
    layouts: bool | None = None,
    offer: int | None = None,
    offer_of: dict[str, int | None] | None = None,
) -> list[Any]:
    """The activations each member's slice was loaded with (None: the agent's default),
    or with ``layouts`` (activations, kernels); each member has ``room`` bytes free, or its
    own in ``room_of``, and offers ``offer`` bytes (``spec.capacity.memoryBytes``), or its
    own in ``offer_of``."""
    held: list[Any] = []

    async def main() -> None:
        net = fake_net(asyncio.get_running_loop())
        for node in RING:
            free = (room_of or {}).get(node, room)
            offered = (offer_of or {}).get(node, offer)
            net.add(node, free_memory=lambda free=free: free, memory_offer=lambda o=offered: o)
        try:
            await net.services["a"].run(
                JobRequest("j", MODEL, prompt, PARAMS, ring_of(RING), parallelism="tensor")
            )
            for node in RING:
                held.extend(
                    key[3] if layouts is None else key[3:]
                    for key in net.services[node].cache._shards
                )
        finally:
            net.close()

    asyncio.run(main())
    return held


def test_a_member_short_of_memory_for_int8_loads_exact(
    fake_net: Any, ring_of: Any, models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where only the exact layout fits, a member that was not told which activations to
    use loads exact ones; told int8, it refuses rather than override the choice. (The
    tiny model is float, run by the numpy kernels: here it may be held in either layout,
    and its int8 layout is twice the size.)"""
    from reconciler.jobs import member
    from reconciler.jobs.plans import held_sizes, tensor_records
    from reconciler.jobs.shards import ShardCache
    from reconciler.placement.modelcost import model_cost

    def sizes(records: Any, layout: str) -> dict[str, int]:
        held = held_sizes(records, layout)
        return {k: 2 * v for k, v in held.items()} if layout == "int8" else held

    monkeypatch.setattr(member, "held_sizes", sizes)
    monkeypatch.setattr(ShardCache, "layouts", lambda self, config: ("exact", "int8"))
    prompt, _ = _oracle(models)
    info = load_model_info(models / MODEL)
    exact = held_sizes(tensor_records(models / MODEL), "exact")
    cost = model_cost(info.config, exact, len(prompt) + PARAMS.max_tokens)
    half = (cost.total_bytes + cost.kv_bytes) // 2  # each of two members' tensor share
    monkeypatch.delenv("MESHNET_ACTIVATIONS")
    assert _held_activations(fake_net, ring_of, prompt, 1 << 40) == [None, None]
    tight = half + cost.total_bytes // 4  # above exact's share, below int8's
    assert _held_activations(fake_net, ring_of, prompt, tight) == ["exact", "exact"]
    monkeypatch.setenv("MESHNET_ACTIVATIONS", "int8")  # chosen: never overridden
    with pytest.raises(JobFailed, match=r"needs [\d.]+ KiB in the int8 layout .* is free"):
        # the coordinator short of room (a peer's refusal reaches it as a generic
        # LoadFailed, without its figures): b has room, so a's refusal is the job's end
        _held_activations(fake_net, ring_of, prompt, tight, {"b": 1 << 40})


def _ggml_share(models: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[list[int], int]:
    """The prompt, and the bytes of a whole share of the tiny model in the ggml layout with
    its KV cache, once its int8 and exact layouts are made 3x larger (it is float: they
    would be no larger) and the activations are left to the agents."""
    from reconciler.jobs import member
    from reconciler.jobs.plans import held_sizes, tensor_records
    from reconciler.jobs.shards import ShardCache
    from reconciler.placement.modelcost import model_cost

    def sizes(records: Any, layout: str) -> dict[str, int]:
        held = held_sizes(records, layout)
        return held if layout == "ggml" else {k: 3 * v for k, v in held.items()}

    monkeypatch.setattr(member, "held_sizes", sizes)
    monkeypatch.setattr(ShardCache, "layouts", lambda self, config: ("exact", "int8", "ggml"))
    prompt, _ = _oracle(models)
    info = load_model_info(models / MODEL)
    ggml = held_sizes(tensor_records(models / MODEL), "ggml")
    cost = model_cost(info.config, ggml, len(prompt) + PARAMS.max_tokens)
    monkeypatch.delenv("MESHNET_ACTIVATIONS")
    return prompt, cost.total_bytes + cost.kv_bytes


def test_a_member_short_of_memory_for_int8_holds_the_files_blocks(
    fake_net: Any, ring_of: Any, models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the int8 layout does not fit but the file's own blocks do, a member loads its
    share for the ggml kernels (8-bit activations too) and the job runs. (The tiny model
    is float: its int8 and exact layouts are made larger here.)"""
    prompt, tight = _ggml_share(models, monkeypatch)
    got = _held_activations(fake_net, ring_of, prompt, tight, layouts=True)
    assert got == [("int8", "ggml"), ("int8", "ggml")]


def test_a_member_offering_less_memory_than_it_has_holds_to_its_offer(
    fake_net: Any, ring_of: Any, models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A member on a roomy device that offers only a ggml share's bytes
    (``spec.capacity.memoryBytes``) holds the file's blocks; offering less than even
    that, it refuses and says it is the offer that is short. (As above, the tiny model's
    int8 and exact layouts are made larger.)"""
    prompt, whole = _ggml_share(models, monkeypatch)
    roomy = 1 << 40
    got = _held_activations(fake_net, ring_of, prompt, roomy, layouts=True)
    assert got == [(None, None), (None, None)]  # the agent's defaults
    got = _held_activations(fake_net, ring_of, prompt, roomy, layouts=True, offer=whole)
    assert got == [("int8", "ggml"), ("int8", "ggml")]
    with pytest.raises(JobFailed, match=r"the device offers [\d.]+ KiB \(its Member's capacity"):
        # only the coordinator short (as above: a peer's refusal reaches it without
        # the figures)
        _held_activations(fake_net, ring_of, prompt, roomy, offer_of={"a": whole // 4})


def test_a_member_holding_to_its_offer_keeps_one_share_at_a_time(
    fake_net: Any, ring_of: Any, models: Path
) -> None:
    """Jobs for two different shares leave both kept for reuse, unless the member offers
    a limit: then the second load drops the first (a running job keeps its own). The
    offer is read on the event loop's thread (the agent reads it from its store, which
    a loader thread must not touch)."""
    readers: set[threading.Thread] = set()

    def kept(offer: int | None) -> int:
        def read_offer() -> int | None:
            readers.add(threading.current_thread())
            return offer

        async def main() -> int:
            net = fake_net(asyncio.get_running_loop())
            for node in RING:
                net.add(node, memory_offer=read_offer)
            try:
                for parallelism in ("single", "tensor"):
                    request = JobRequest("j", MODEL, prompt, PARAMS, ring_of(RING),
                                         parallelism=parallelism)  # fmt: skip
                    await net.services["a"].run(request)
                return len(net.services["a"].cache._shards)
            finally:
                net.close()

        return asyncio.run(main())

    prompt, _ = _oracle(models)
    assert kept(None) == 2 and kept(1 << 40) == 1
    assert readers == {threading.main_thread()}


def test_a_share_too_large_in_its_layout_is_refused_at_submission(
    fake_net: Any, ring_of: Any, models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The planner fits shares by the file's bytes; a measured member whose share does
    not fit in the layout it would really hold fails the job before anything is offered,
    with the figures. (The tiny model is float32 both ways: its layout is made 2x here.)"""
    from reconciler.jobs import planning
    from reconciler.jobs.plans import held_sizes, tensor_sizes
    from reconciler.placement.modelcost import model_cost

    def doubled(records: Any, layout: str) -> dict[str, int]:
        return {k: 2 * v for k, v in held_sizes(records, layout).items()}

    prompt, _ = _oracle(models)
    info = load_model_info(models / MODEL)
    cost = model_cost(info.config, tensor_sizes(models / MODEL), len(prompt) + PARAMS.max_tokens)
    room = cost.total_bytes + cost.kv_bytes + 1024  # the file's bytes fit
    monkeypatch.setattr(planning, "held_sizes", doubled)
    failed, frames = _run(fake_net, ring_of, prompt, "single", _measured(1.0, memory=room))
    assert isinstance(failed, JobFailed) and failed.reason == Reason.NO_PLAN and frames == 0
    assert failed.message.startswith("a: this share needs ")
    assert "KiB in the numpy layout (" in failed.message and "KiB in the file)" in failed.message
