"""Bad or unexpected frames are dropped and counted; nothing raises into the link."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from reconciler.inference.sampling import SamplingParams
from reconciler.jobs import messages as m
from reconciler.jobs.netcollectives import SESSION

OFFER = m.JobOffer(
    "j", 9, "tiny-llama.gguf", (1, 2, 3), SamplingParams(max_tokens=2), 1, "h", 8192,
    (m.Participant("a", 0, 4096), m.Participant("b", 4096, 8192)),
)  # fmt: skip


def test_garbage_never_raises(fake_net: Any) -> None:
    rng = random.Random(3)
    valid = m.encode(OFFER)

    async def main() -> dict[str, int]:
        net = fake_net(asyncio.get_running_loop())
        svc = net.add("b")
        try:
            for n in range(len(valid)):
                svc.on_control("a", valid[:n])
            for _ in range(200):
                svc.on_control("a", rng.randbytes(rng.randrange(64)))
                svc.on_tensor("a", rng.randbytes(rng.randrange(64)))
            return dict(svc.dropped)
        finally:
            net.close()

    dropped = asyncio.run(main())
    assert dropped["bad-control"] == len(valid) + 200
    assert dropped["bad-tensor"] + dropped["unknown-session"] == 200


def test_unexpected_messages_are_dropped(fake_net: Any) -> None:
    async def main() -> tuple[dict[str, int], int]:
        net = fake_net(asyncio.get_running_loop())
        svc = net.add("b")
        try:
            svc.on_control("z", m.encode(OFFER))  # coordinator not in the job
            outsider = m.JobOffer(**{**OFFER.__dict__, "session": 10,
                                     "participants": (m.Participant("a", 0, 8192),)})  # fmt: skip
            svc.on_control("a", m.encode(outsider))  # we are not in the job
            svc.on_control("a", m.encode(m.JobStart("j", 9)))  # no such run
            svc.on_control("a", m.encode(m.JobReady("j", 9, "a", 1.0, 1)))  # no coordination
            svc.on_tensor("a", SESSION.pack(9) + b"x")  # no such session
            return dict(svc.dropped), len(svc.runs)
        finally:
            net.close()

    dropped, runs = asyncio.run(main())
    assert runs == 0
    assert dropped == {
        "not-a-participant": 2,
        "no-such-run": 1,
        "no-such-coordination": 1,
        "unknown-session": 1,
    }


def test_reports_from_strangers_do_not_count(ring_of: Any) -> None:
    """A READY from a node outside the job, or naming another node, changes nothing."""
    from reconciler.jobs.coordinator import make_offer
    from reconciler.jobs.machine import JobMachine
    from reconciler.jobs.results import JobRequest

    machine = JobMachine("a")
    ring = ring_of({"a": (0, 4096), "b": (4096, 8192)})
    machine.coordinate(make_offer(JobRequest("j", "m", [1], SamplingParams(), ring), 5), 0.0)
    machine.receive_message("z", m.encode(m.JobReady("j", 5, "z", 1.0, 1)), 1.0)
    machine.receive_message("b", m.encode(m.JobReady("j", 5, "a", 1.0, 1)), 1.0)
    machine.receive_message("b", m.encode(m.JobReady("other", 5, "b", 1.0, 1)), 1.0)
    assert machine.coordinations[5].ready_nodes == set()
    assert dict(machine.drops) == {"no-such-coordination": 2, "node-mismatch": 1}
