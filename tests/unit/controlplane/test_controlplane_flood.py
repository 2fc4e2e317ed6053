"""Findings 2 and 10 on the admin: anonymous join requests cannot fill its store, and
a token's uses are one count shared by the agent and the control plane.

- refused requests from unknown keys are counters, not Members or events;
- pending requests (approve mode) are bounded;
- requests are rate limited per source address and per key (fake clock);
- Members are found by node ID through an index;
- an N-use token admits at most N keys, however many admitters race for it."""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi import HTTPException
from typer.testing import CliRunner

from manifests import Member
from meshctl.main import app
from reconciler.admission_records import MAX_PENDING_MEMBERS, record_join
from reconciler.beacon.handlers import join_requested
from reconciler.certs.admission import JoinClaim
from reconciler.certs.desk import AdminDesk, Answer
from reconciler.certs.identity import NodeIdentity
from reconciler.certs.joinlimits import RATE_LIMITED
from reconciler.certs.tokens import make_join_proof, signed_message
from reconciler.controlplane.joining import JoinRequest, join
from reconciler.controlplane.state import AppState
from reconciler.drivers.service_tls import default_ca_files, load_served_pools
from reconciler.observed import beacons_key
from reconciler.poolinfo import PoolInfo
from reconciler.pools import read_pool_info
from reconciler.store import Store
from reconciler.store_admin import denials, tokens

NOW = 1_750_000_000.0


def claim(kit: Any, name: str = "x") -> JoinClaim:
    identity = NodeIdentity(os.urandom(32))
    return JoinClaim(kit.root.pool_id, identity.public_key, identity.node_id, name,
                     os.urandom(16), NOW)  # fmt: skip


def info(kit: Any) -> PoolInfo:
    found = read_pool_info(kit.home, "lab")
    assert found is not None
    return found


def decide_and_record(store: Store, kit: Any, desk: AdminDesk, c: JoinClaim, src: str,
                      now: float) -> Answer:  # fmt: skip
    answer = desk.answer(c, (src, 42424), (), now)
    record_join(store, info(kit), desk, join_requested(c, answer, (src, 42424)))
    return answer


def test_refused_requests_are_counted_not_stored(kit: Any) -> None:
    desk = AdminDesk(kit.root, "token")
    with Store.open(kit.home.root) as store:
        for i in range(300):
            source = f"10.0.{i // 200}.{i % 200}"
            answer = decide_and_record(store, kit, desk, claim(kit), source, NOW + i * 0.1)
            assert (answer.status, answer.reason) == ("denied", "token required")
        assert store.list("Member") == [] and store.events() == []
        [row] = denials(store, "lab")
        assert (row.reason, row.count, row.last_source) == ("token required", 300, "10.0.1.99")
    with Store.open(kit.home.root) as store:  # what the agent publishes from its limiter
        limited = {"key": 0, "source": 165, "pool": 0}
        store.put_observed(beacons_key("lab"), {"sent": 1, "joinsRateLimited": limited})
    shown = CliRunner().invoke(app, ["--home", str(kit.home.root), "describe", "pool", "lab"])
    assert shown.exit_code == 0 and "Refused join requests" in shown.stdout
    assert re.search(r"token required\s+300\s", shown.stdout)
    assert "rate limited: per key: 0, per pool: 0, per source: 165" in shown.stdout


def test_pending_requests_in_approve_mode_are_bounded(kit: Any) -> None:
    desk = AdminDesk(kit.root, "approve")
    total = MAX_PENDING_MEMBERS + 40
    with Store.open(kit.home.root) as store:
        for i in range(total):
            source = f"10.1.{i // 200}.{i % 200}"
            answer = decide_and_record(store, kit, desk, claim(kit, f"dev{i}"), source, NOW + i)
            assert answer.status == "pending"
        members = [m for m in store.list("Member") if isinstance(m, Member)]
        assert len(members) == MAX_PENDING_MEMBERS
        assert {m.spec.device_name for m in members} == {f"dev{i}" for i in range(40, total)}
        assert all(e.name in {m.metadata.name for m in members} for e in store.events(limit=10**6))


def test_requests_are_rate_limited_per_source_and_per_key(kit: Any) -> None:
    desk = AdminDesk(kit.root, "token")
    with Store.open(kit.home.root) as store:
        from_one_source = [
            decide_and_record(store, kit, desk, claim(kit), "10.2.0.1", NOW + i * 0.01).reason
            for i in range(200)
        ]  # 200 fresh keys in 2 s from one address
        one_key = claim(kit)
        same_key = [
            decide_and_record(store, kit, desk, one_key, f"10.3.0.{i}", NOW + 10 + i * 0.01).reason
            for i in range(100)
        ]  # one key from 100 addresses in 1 s
        decided = 200 - from_one_source.count(RATE_LIMITED)
        assert 30 <= decided <= 35 and from_one_source[:30] == ["token required"] * 30
        assert 10 <= 100 - same_key.count(RATE_LIMITED) <= 11
        [row] = denials(store, "lab")
        assert row.count == decided + 100 - same_key.count(RATE_LIMITED)
        # time refills the buckets: a patient joiner is heard again
        later = decide_and_record(store, kit, desk, one_key, "10.2.0.1", NOW + 60).reason
        assert later == "token required"
    assert desk.limiter is not None and desk.limiter.limited["source"] >= 165


def test_an_approved_key_is_never_rate_limited(kit: Any) -> None:
    desk = AdminDesk(kit.root, "approve")
    request = claim(kit, "laptop")
    with Store.open(kit.home.root) as store:
        answers = [decide_and_record(store, kit, desk, request, "10.4.0.1", NOW + i * 0.01)
                   for i in range(40)]  # fmt: skip
        assert answers[-1].reason == RATE_LIMITED
        desk.approvals[request.node_id] = "approved"
        answer = decide_and_record(store, kit, desk, request, "10.4.0.1", NOW + 0.5)
        assert answer.status == "approved" and answer.cert_der


def _http_request(kit: Any, identity: NodeIdentity, token: str, now: float) -> JoinRequest:
    nonce = os.urandom(16)
    token_id, proof = make_join_proof(token, kit.root.pool_id, identity.public_key, nonce, now)
    message = signed_message(kit.root.pool_id, identity.public_key, nonce, now, "dev")
    return JoinRequest.model_validate({
        "poolId": kit.root.pool_id, "publicKey": identity.public_key.hex(), "deviceName": "dev",
        "tokenId": token_id, "proof": proof.hex(), "nonce": nonce.hex(), "timestamp": now,
        "signature": identity.sign(message).hex(),
    })  # fmt: skip


def _admitter(kit: Any) -> AppState:
    """What one process that admits members holds (a control plane, or an agent)."""
    pools = load_served_pools(kit.home, "controlplane", default_ca_files(kit.home), time.time())
    return AppState(kit.home, pools)


def test_anonymous_http_joins_are_limited_and_counted(kit: Any) -> None:
    state, now = _admitter(kit), time.time()
    statuses = []
    for _ in range(60):
        with pytest.raises(HTTPException) as refused:
            join(state, _http_request(kit, NodeIdentity(os.urandom(32)), "abcdef.0123456789abcdef",
                                      now), now=now, source="192.0.2.7")  # fmt: skip
        statuses.append(f"{refused.value.status_code} {refused.value.detail}")
    assert sum(s.startswith("403") and "unknown token" in s for s in statuses) == 30
    assert sum(s.startswith("429") and RATE_LIMITED in s for s in statuses) == 30
    with Store.open(kit.home.root) as store:
        assert store.list("Member") == [] and store.events() == []
        [row] = denials(store, "lab")
        assert row.count == 30 and row.last_source == "192.0.2.7"


@pytest.mark.parametrize("admitters", [2, 6])
def test_an_n_use_token_admits_at_most_n_keys_under_concurrency(kit: Any, admitters: int) -> None:
    """Several admitters (agent and control plane are separate processes, each with its
    own store connection and desk) race to admit 4 keys each with a 3-use token."""
    token, now = kit.token(usages=3), time.time()
    states = [_admitter(kit) for _ in range(admitters)]
    admitted: list[str] = []
    start = threading.Barrier(admitters)

    def run(state: AppState, index: int) -> None:
        start.wait()
        for k in range(4):
            identity = NodeIdentity(os.urandom(32))
            try:
                join(state, _http_request(kit, identity, token, now), now=now,
                     source=f"10.5.{index}.{k}")  # fmt: skip
            except HTTPException as err:
                assert "token" in str(err.detail), err.detail
            else:
                admitted.append(identity.node_id)

    threads = [threading.Thread(target=run, args=(s, i)) for i, s in enumerate(states)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(admitted) == 3
    with Store.open(kit.home.root) as store:
        [stored] = tokens(store, "lab")
        assert stored.record.usages_left == 0
        members = [m for m in store.list("Member") if isinstance(m, Member)]
        assert {m.status.node_id for m in members} == set(admitted)


def test_a_stale_desk_cannot_spend_a_use_the_other_admitter_spent(kit: Any) -> None:
    """The agent's desk keeps token records in memory between store changes; the
    spend is the store's, so a use the control plane made is not spent again."""
    token, now = kit.token(usages=2), time.time()
    agent, plane = _admitter(kit), _admitter(kit)
    join(agent, _http_request(kit, NodeIdentity(os.urandom(32)), token, now), now=now)
    desk = agent.desks[kit.root.pool_id]  # believes one use is left
    join(plane, _http_request(kit, NodeIdentity(os.urandom(32)), token, now), now=now)
    identity, nonce = NodeIdentity(os.urandom(32)), os.urandom(16)
    token_id, proof = make_join_proof(token, kit.root.pool_id, identity.public_key, nonce, now)
    assert desk.tokens[token_id].usages_left == 1
    late = JoinClaim(kit.root.pool_id, identity.public_key, identity.node_id, "late", nonce,
                     now, "", token_id, proof)  # fmt: skip
    answer = desk.answer(late, ("10.6.0.1", 1), (), now)
    assert (answer.status, answer.reason) == ("denied", "token rejected: token used up")


def test_members_are_found_through_the_node_id_index(kit: Any) -> None:
    with Store.open(kit.home.root) as store:
        plan = store.db.execute(
            "EXPLAIN QUERY PLAN SELECT name FROM objects WHERE kind = 'Member' AND "
            "json_extract(status, '$.nodeId') = ?", ("node-0123456789abcdef",)
        ).fetchall()  # fmt: skip
    assert any("objects_node_id" in str(tuple(row)) for row in plan)


CHARGER = """
import sys, time
from pathlib import Path
from reconciler.store import Store
from reconciler.store_admin import charge_token
with Store.open(Path(sys.argv[1])) as store:
    print("ready", flush=True)
    sys.stdin.readline()  # start together: the test says go once all are ready
    print(sum(charge_token(store, sys.argv[2], time.time()) for _ in range(5)))
"""


def test_token_uses_are_one_count_across_processes(kit: Any) -> None:
    """Four processes (as the agent, the control plane and two more would be) spend a
    3-use token five times each: three spends succeed in all."""
    import subprocess
    import sys

    token = kit.token(usages=3)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHARGER, str(kit.home.root), token[:6]],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(4)
    ]
    for p in procs:  # every process has its store open before any spends
        assert p.stdout is not None and p.stdout.readline() == "ready\n"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    spent = [int(p.communicate(timeout=60)[0]) for p in procs]
    assert sum(spent) == 3, spent
    with Store.open(kit.home.root) as store:
        [stored] = tokens(store, "lab")
    assert stored.record.usages_left == 0
