"""Finding 4: a member cannot make others open any path or load whatever it likes.

Offers name models (``demo`` or a name in the member's model folders), never paths;
a member runs a bounded number of jobs per coordinator, takes part only in
plans among its ring's members and columns, and tells a peer nothing about its files
when loading fails.
The local user's own ``--model PATH`` keeps working: the coordinator offers its name."""

from __future__ import annotations

import asyncio
import os
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from reconciler.home import Home
from reconciler.inference.sampling import SamplingParams
from reconciler.jobs import messages as m
from reconciler.jobs.errors import JobFailed, Reason
from reconciler.jobs.results import JobRequest
from reconciler.jobs.service import LOAD_FAILED_TO_PEER, MODEL_NOT_AVAILABLE
from reconciler.models import (
    NOT_AVAILABLE,
    ModelRefused,
    job_model,
    model_problem,
    offered_name,
    resolve_name,
)

MODELS = Path(__file__).resolve().parents[2] / "fixtures" / "models"
TINY = "tiny-qwen2-hf"
SPLIT = {"a": (0, 4096), "b": (4096, 8192)}


@pytest.fixture
def member_home(tmp_path: Path) -> Home:
    """A member whose owner put the tiny model in its models folder."""
    home = Home(tmp_path / "member")
    (home.root / "models").mkdir(parents=True)
    (home.root / "models" / TINY).symlink_to(MODELS / TINY)
    return home


@pytest.mark.parametrize(
    "ref", ["/etc/passwd", "../state.db", "models/../state.db", "~/x", "a/b", "..", ""]
)
def test_peers_can_name_models_but_never_paths(member_home: Home, ref: str) -> None:
    with pytest.raises(ModelRefused) as refused:
        resolve_name(ref, member_home)
    assert str(refused.value) == NOT_AVAILABLE


def test_a_missing_and_a_forbidden_model_read_the_same(member_home: Home) -> None:
    (member_home.root / "secret.gguf").write_bytes(b"GGUF")
    answers = set()
    for ref in ("secret.gguf", "absent.gguf", "/etc/hostname", str(member_home.root / "state.db")):
        with pytest.raises(ModelRefused) as refused:
            resolve_name(ref, member_home)
        answers.add(str(refused.value))
        assert model_problem(ref, member_home, submitted=True) == NOT_AVAILABLE
    assert answers == {NOT_AVAILABLE}
    assert resolve_name(TINY, member_home) == member_home.root / "models" / TINY
    assert resolve_name("demo", member_home).suffix == ".gguf"


def test_model_dirs_of_the_owner_are_searched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = Home(tmp_path / "home")
    monkeypatch.setenv("MESHNET_MODEL_DIRS", f"{tmp_path / 'none'}:{MODELS}")
    assert resolve_name("tiny-llama.gguf", home) == MODELS / "tiny-llama.gguf"


def test_the_local_user_may_name_a_path_and_the_offer_carries_its_name(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    path = job_model(str(MODELS / TINY), home, submitted=False)
    assert path == MODELS / TINY and offered_name(str(MODELS / TINY), path) == TINY
    assert model_problem(str(MODELS / TINY), home, submitted=False) is None
    assert "does not exist" in (model_problem("/no/such.gguf", home, submitted=False) or "")
    with pytest.raises(ModelRefused):
        job_model(str(MODELS / TINY), home, submitted=True)


def _offer(ring: Any, model: str, session: int, job: str = "evil") -> m.JobOffer:
    slots = sorted(ring.members, key=lambda s: s.position)
    return m.JobOffer(job, session, model, (1, 2, 3), SamplingParams(max_tokens=4), ring.epoch,
                      ring.hash, ring.shard_columns,
                      tuple(m.Participant(s.node_id, s.start, s.end) for s in slots))  # fmt: skip


def _answers(net: Any, offers: list[m.JobOffer], coordinator: str = "a") -> list[m.Message]:
    """Deliver offers to member b straight from ``coordinator``; what b sends back."""
    sent: list[m.Message] = []
    b = net.services["b"]
    b.send_control = lambda dst, payload: sent.append(m.decode(payload))
    for offer in offers:
        b.on_control(coordinator, m.encode(offer))
    return sent


def test_an_offered_path_fails_with_a_generic_reason(
    fake_net: Any, ring_of: Any, member_home: Home
) -> None:
    ring = ring_of(SPLIT)

    async def main() -> list[m.Message]:
        net = fake_net(asyncio.get_running_loop())
        net.add("a")
        net.add("b", resolver=partial(resolve_name, home=member_home))
        try:
            return _answers(net, [_offer(ring, str(MODELS / TINY), 1),
                                  _offer(ring, "/etc/passwd", 2, "evil2")])  # fmt: skip
        finally:
            net.close()

    answers = asyncio.run(main())
    assert [(type(a).__name__, a.reason, a.message) for a in answers] == [  # type: ignore[union-attr]
        ("JobLoadFailed", Reason.MODEL_NOT_FOUND, MODEL_NOT_AVAILABLE)
    ] * 2


def test_runs_per_coordinator_are_capped(fake_net: Any, ring_of: Any) -> None:
    ring = ring_of(SPLIT)

    async def main() -> tuple[list[m.Message], int]:
        net = fake_net(asyncio.get_running_loop())
        net.add("a")
        net.add("b")
        try:
            offers = [_offer(ring, TINY, session, f"job{session}") for session in range(1, 6)]
            answers = _answers(net, offers)
            return answers, len(net.services["b"].runs)
        finally:
            net.close()

    answers, runs = asyncio.run(main())
    assert runs == 2
    busy = [a for a in answers if isinstance(a, m.JobLoadFailed)]
    assert len(busy) == 3 and {a.message for a in busy} == {"this member is busy"}


def _stages(*nodes: str) -> tuple[m.Participant, ...]:
    return tuple(m.Participant(n, 0, 8192, i, i + 1) for i, n in enumerate(nodes))


@pytest.mark.parametrize(
    "change",
    [
        {"plan": "pipeline", "participants": _stages("a", "b", "mallory")},
        {
            "shard_columns": 4096,
            "participants": (m.Participant("a", 0, 10), m.Participant("b", 10, 4096)),
        },
    ],
    ids=["a-stranger", "other-columns"],
)
def test_plans_are_cut_only_among_the_ring_s_members(
    fake_net: Any, ring_of: Any, change: dict[str, Any]
) -> None:
    """Plans may re-cut columns or layers, never bring in a node or other columns."""
    ring = ring_of(SPLIT)

    async def main() -> list[m.Message]:
        net = fake_net(asyncio.get_running_loop())
        net.add("a")
        net.add("b", ring_view=lambda: ring)
        try:
            offer = _offer(ring, TINY, 7)
            return _answers(net, [m.JobOffer(**{**offer.__dict__, **change})])
        finally:
            net.close()

    [answer] = asyncio.run(main())
    assert isinstance(answer, m.JobLoadFailed) and answer.reason == Reason.RING_MISMATCH


def test_a_load_failure_tells_the_coordinator_nothing_about_files(
    fake_net: Any, ring_of: Any, tmp_path: Path
) -> None:
    broken = tmp_path / "models" / "broken.gguf"
    broken.parent.mkdir()
    broken.write_bytes(b"GGUF" + os.urandom(64))

    async def main() -> JobFailed | None:
        net = fake_net(asyncio.get_running_loop())
        net.add("a")
        net.add("b", resolver=lambda ref: tmp_path / "models" / ref)
        ring = ring_of(SPLIT)
        request = JobRequest("job-1", "broken.gguf", [1, 2], SamplingParams(max_tokens=2), ring,
                             str(MODELS / TINY))  # fmt: skip
        try:
            await net.services["a"].run(request)
        except JobFailed as exc:
            return exc
        finally:
            net.close()
        return None

    failed = asyncio.run(main())
    assert failed is not None and failed.reason == Reason.LOAD_FAILED
    assert LOAD_FAILED_TO_PEER in failed.message and str(tmp_path) not in failed.message


def test_the_coordinator_loads_its_own_path_and_offers_the_name(
    fake_net: Any, ring_of: Any, member_home: Home
) -> None:
    offered: list[str] = []

    def resolve_and_note(ref: str) -> Path:
        offered.append(ref)
        return resolve_name(ref, member_home)

    async def main() -> Any:
        net = fake_net(asyncio.get_running_loop())
        net.add("a", resolver=lambda ref: (_ for _ in ()).throw(AssertionError("no lookup")))
        net.add("b", resolver=resolve_and_note)
        request = JobRequest("job-1", TINY, [1, 2], SamplingParams(max_tokens=2, ignore_eos=True),
                             ring_of(SPLIT), str(MODELS / TINY))  # fmt: skip
        try:
            return await net.services["a"].run(request)
        finally:
            net.close()

    result = asyncio.run(main())
    assert offered == [TINY] and len(result.token_ids) == 2
