"""The controllers' pure plans: given what was observed, what to do."""

from __future__ import annotations

from manifests import Job, Member, Pool
from reconciler.controllers import job, member, pool
from reconciler.poolinfo import PoolInfo

FPR = "sha256:" + "ab" * 32
POOL = Pool.model_validate({"metadata": {"name": "p"}})
MEMBER = Member.model_validate(
    {
        "metadata": {"name": "me"},
        "spec": {"pool": {"name": "p", "id": "pool-1", "rootFingerprint": FPR}},
    }
)
JOB = Job.model_validate({"metadata": {"name": "j"}, "spec": {"pool": "p", "prompt": "Hi"}})
ADMIN = PoolInfo("p", "pool-1", FPR, "admin")


def test_pool_without_identity_waits_for_init() -> None:
    plan = pool.plan(POOL, pool.PoolObserved(False, None), 0.0)
    assert plan.actions == []
    assert plan.conditions[0].reason == "NodeNotInitialized"
    assert "meshctl init" in plan.conditions[0].message


def test_pool_without_root_creates_one() -> None:
    plan = pool.plan(POOL, pool.PoolObserved(True, None), 0.0)
    assert plan.actions == [pool.CreatePoolRoot("p")]


def test_pool_with_root_reports_it() -> None:
    members = [{"nodeId": "node-a", "name": "a", "status": "ONLINE"}]
    ring = {"converged": True, "epoch": 2, "hash": "ab" * 32, "members": [{}, {}]}
    plan = pool.plan(POOL, pool.PoolObserved(True, ADMIN, members, ring), 0.0)
    assert plan.actions == []
    assert plan.status == {
        "poolId": "pool-1", "rootFingerprint": FPR, "role": "admin", "members": members,
    }  # fmt: skip
    assert (plan.conditions[0].status, plan.conditions[0].reason) == ("True", "RootReady")
    assert (plan.conditions[1].type, plan.conditions[1].status) == ("RingConverged", "True")
    assert "2 member(s)" in plan.conditions[1].message


def test_pool_ring_condition_while_converging() -> None:
    ring = {"converged": False, "members": [{}]}
    plan = pool.plan(POOL, pool.PoolObserved(True, ADMIN, [], ring), 0.0)
    assert (plan.conditions[1].status, plan.conditions[1].reason) == ("False", "Converging")
    plan = pool.plan(POOL, pool.PoolObserved(True, ADMIN, [], None), 0.0)
    assert plan.conditions[1].status == "Unknown"


def test_member_joined_when_pool_material_matches() -> None:
    info = PoolInfo("p", "pool-1", FPR, "member")
    plan = member.plan(MEMBER, member.MemberObserved(True, info), 0.0)
    assert plan.status["phase"] == "Joined"


def test_member_of_another_pool_with_the_same_name_is_refused() -> None:
    info = PoolInfo("p", "pool-other", FPR, "member")
    plan = member.plan(MEMBER, member.MemberObserved(True, info), 0.0)
    assert plan.status["phase"] == "Denied"
    assert plan.conditions[0].reason == "PoolMismatch"


def test_member_waits_for_admin_and_reports_token_problems() -> None:
    plan = member.plan(MEMBER, member.MemberObserved(True, None), 0.0)
    assert (plan.status["phase"], plan.conditions[0].reason) == ("Pending", "WaitingForAdmin")
    join = {"state": "pending", "reason": "waiting for approval", "attempts": 3}
    plan = member.plan(MEMBER, member.MemberObserved(True, None, None, join), 0.0)
    assert (plan.status["phase"], plan.conditions[0].reason) == ("Pending", "PendingApproval")
    assert "waiting for approval (attempt 3)" in plan.conditions[0].message
    join = {"state": "denied", "reason": "token expired", "attempts": 1}
    plan = member.plan(MEMBER, member.MemberObserved(True, None, None, join), 0.0)
    assert (plan.status["phase"], plan.conditions[0].reason) == ("Denied", "JoinDenied")
    plan = member.plan(MEMBER, member.MemberObserved(True, None, "cannot read token"), 0.0)
    assert plan.conditions[0].reason == "TokenUnreadable"


def test_member_record_on_admin_keeps_its_phase() -> None:
    plan = member.plan(MEMBER, member.MemberObserved(True, ADMIN), 0.0)
    assert plan.status["phase"] == "Pending"


def test_job_pending_reasons_in_order() -> None:
    cases = [
        (job.JobObserved(False, False, None, False, True), "PoolNotFound"),
        (job.JobObserved(True, False, None, False, True), "PoolNotReady"),
        (job.JobObserved(True, True, "no model", False, True), "ModelUnavailable"),
        (job.JobObserved(True, True, None, True, False), "NoAgent"),
        (job.JobObserved(True, True, None, False, True), "RingNotConverged"),
    ]
    for observed, reason in cases:
        plan = job.plan(JOB, observed, 0.0)
        assert plan.status["phase"] == "Pending"
        assert plan.conditions[0].reason == reason


def test_job_starts_once_then_follows_the_runner() -> None:
    ready_to_run = job.JobObserved(True, True, None, True, True)
    assert job.plan(JOB, ready_to_run, 0.0).actions == [job.StartJob("j")]
    running = JOB.model_copy(deep=True)
    running.status.phase = "Running"
    plan = job.plan(running, job.JobObserved(True, True, None, True, True, running=True), 0.0)
    assert plan.actions == [] and plan.conditions[0].reason == "Running"


def test_job_interrupted_by_a_restart_fails_instead_of_running_twice() -> None:
    running = JOB.model_copy(deep=True)
    running.status.phase = "Running"
    plan = job.plan(running, job.JobObserved(True, True, None, True, True, running=False), 0.0)
    assert plan.actions == []
    assert plan.status["phase"] == "Failed" and plan.status["failureReason"] == "Interrupted"


def test_finished_job_is_left_alone() -> None:
    done = JOB.model_copy(deep=True)
    done.status.phase = "Succeeded"
    plan = job.plan(done, job.JobObserved(False, False, None, False), 0.0)
    assert plan.actions == [] and plan.requeue_after is None
    assert plan.status == {"phase": "Succeeded", "completionTime": "1970-01-01T00:00:00Z"}
    assert plan.conditions[0].reason == "Succeeded"


def test_pool_held_as_member_never_makes_a_root() -> None:
    joined = Pool.model_validate(
        {"metadata": {"name": "p", "annotations": {pool.JOINED_VIA: "laptop"}}}
    )
    plan = pool.plan(joined, pool.PoolObserved(True, None), 0.0)
    assert plan.actions == []
    assert plan.conditions[0].reason == "NotJoined"


def test_pool_that_a_member_of_this_device_joins_never_makes_a_root() -> None:
    """The same pool.yaml can be applied on every device: where a Member names the pool,
    the device waits for its certificate instead of founding a second pool."""
    plan = pool.plan(POOL, pool.PoolObserved(True, None, joining_as="laptop"), 0.0)
    assert plan.actions == []
    assert plan.conditions[0].reason == "NotJoined" and "laptop" in plan.conditions[0].message
