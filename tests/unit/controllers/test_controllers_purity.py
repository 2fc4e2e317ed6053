"""The controllers' plans are pure: no I/O, no clock, no mutation of what they are given.

Every plan runs with files, sockets, subprocesses and the wall clock made to raise, on a
spread of observations, twice: the two results must be equal and the inputs unchanged.
A controller that read the store, the clock or the network would fail here.
"""

from __future__ import annotations

import builtins
import copy
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from manifests import Job, Member, Pool
from reconciler.controllers import job, member, pool
from reconciler.poolinfo import PoolInfo

FPR = "sha256:" + "ab" * 32
ADMIN = PoolInfo("p", "pool-1", FPR, "admin")
POOL = Pool.model_validate({"metadata": {"name": "p"}})
MEMBER = Member.model_validate(
    {
        "metadata": {"name": "me"},
        "spec": {"pool": {"name": "p", "id": "pool-1", "rootFingerprint": FPR}},
    }
)
JOB = Job.model_validate({"metadata": {"name": "j"}, "spec": {"pool": "p", "prompt": "Hi"}})
RING = {"converged": True, "epoch": 2, "hash": "ab" * 32, "members": [{}, {}]}

Case = tuple[Callable[[Any, Any, float], Any], Any, Any]


def _cases() -> Iterator[Case]:
    for observed in (
        pool.PoolObserved(False, None),
        pool.PoolObserved(True, None),
        pool.PoolObserved(True, ADMIN, [{"nodeId": "node-a", "status": "ONLINE"}], RING),
        pool.PoolObserved(True, None, joining_as="laptop"),
    ):
        yield pool.plan, POOL, observed
    for m_observed in (
        member.MemberObserved(False, None),
        member.MemberObserved(True, None, token_problem="expired"),
        member.MemberObserved(True, ADMIN),
        member.MemberObserved(True, ADMIN, join={"state": "pending"}),
    ):
        yield member.plan, MEMBER, m_observed
    running = JOB.model_copy(deep=True)
    running.status.phase = "Running"
    for subject, j_observed in (
        (JOB, job.JobObserved(False, False, None, False)),
        (JOB, job.JobObserved(True, True, None, True, True)),
        (JOB, job.JobObserved(True, True, "no such model", True, True)),
        (JOB, job.JobObserved(True, True, None, True, True, jobs_ahead=2)),
        (JOB, job.JobObserved(True, True, None, True, True, cancel_requested="user")),
        (running, job.JobObserved(True, True, None, True, True, running=False)),
        (running, job.JobObserved(True, True, None, True, True, running=True)),
    ):
        yield job.plan, subject, j_observed


def _forbidden(*_: object, **__: object) -> Any:
    raise AssertionError("a controller's plan did I/O or read the clock")


@pytest.fixture()
def no_io(monkeypatch: pytest.MonkeyPatch) -> None:
    for target, name in (
        (builtins, "open"),
        (os, "open"),
        (os, "stat"),
        (socket, "socket"),
        (socket, "create_connection"),
        (subprocess, "Popen"),
        (time, "time"),
        (time, "monotonic"),
        (time, "sleep"),
    ):
        monkeypatch.setattr(target, name, _forbidden)


@pytest.mark.parametrize("case", list(_cases()), ids=lambda c: f"{c[0].__module__}")
def test_plan_is_deterministic_and_leaves_its_inputs_alone(case: Case, no_io: None) -> None:
    plan, subject, observed = case
    subject_before = subject.model_dump()
    observed_before = copy.deepcopy(observed)
    first = plan(subject, observed, 100.0)
    second = plan(subject, observed, 100.0)
    assert first == second
    assert subject.model_dump() == subject_before
    assert observed == observed_before
