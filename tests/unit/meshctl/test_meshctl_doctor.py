"""doctor: the kernel's multicast table is read right, and the verdict names causes."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from meshctl.doctor import verdict
from meshctl.doctor_checks import multicast_groups
from meshctl.doctor_findings import Finding
from reconciler.entry import mesh_app
from reconciler.entry import meshctl_app as app
from reconciler.home import Home
from reconciler.store import Store

IGMP = """Idx\tDevice    : Count Querier\tGroup    Users Timer\tReporter
1\tlo        :     2      V3
\t\t\t\t010000E0     1 0:00000000\t\t0
\t\t\t\t0100C0EF     1 0:00000000\t\t0
4\teth0      :     1      V3
\t\t\t\t010000E0     1 0:00000000\t\t0
"""


def test_multicast_groups_parses_proc_net_igmp(tmp_path: Path) -> None:
    path = tmp_path / "igmp"
    path.write_text(IGMP)
    assert multicast_groups(path) == {"lo": {"224.0.0.1", "239.192.0.1"}, "eth0": {"224.0.0.1"}}
    assert multicast_groups(tmp_path / "absent") == {}


def test_verdict_blames_multicast_when_nothing_is_heard() -> None:
    findings = [Finding("ok", "beacons", "sent 12, received 12, from 0 peer(s)")]
    assert "multicast is probably blocked" in verdict(findings)[0]
    assert verdict([Finding("ok", "beacons", "sent 3, received 9, from 1 peer(s)")]) == [
        "no problem found"
    ]
    assert "mesh init" in verdict([Finding("fail", "node", "not initialised")])[0]
    stuck = verdict([Finding("warn", "ring", "not converged: epoch 9, 2 member(s)")])
    assert "same Pool ring settings" in stuck[0]


def test_doctor_reports_json_and_fails_without_an_agent(home: Home) -> None:
    runner = CliRunner()
    assert runner.invoke(mesh_app, ["init", "--name", "a"]).exit_code == 0
    assert runner.invoke(mesh_app, ["pool-create", "--name", "test-pool"]).exit_code == 0
    with Store.open(home.root) as store:
        store.put_observed(
            "beacons/test-pool",
            {"sent": 4, "received": 4, "drops": {"bad_signature": 2}, "peers": {}},
        )
    result = runner.invoke(app, ["doctor", "-o", "json"])
    data = json.loads(result.stdout)
    topics = {f["topic"]: f for f in data["sections"]["pool test-pool"]}
    assert topics["certificate"]["level"] == "fail"  # no agent ran: no member certificate yet
    assert topics["dropped"]["message"] == "bad_signature=2"
    assert any("multicast is probably blocked" in cause for cause in data["verdict"])
    assert any("agent is not running" in cause for cause in data["verdict"])
    assert runner.invoke(app, ["doctor"]).exit_code == 1


def test_doctor_warns_about_refused_gossip(tmp_path: Path) -> None:
    """A member whose gossip is refused (a bug, or a hostile member) shows in doctor."""
    from manifests.pool import Pool
    from meshctl.doctor_checks import check_beacons
    from reconciler.observed import beacons_key

    pool = Pool.model_validate(
        {"apiVersion": "meshnet.dev/v1alpha1", "kind": "Pool", "metadata": {"name": "p"}}
    )
    with Store.open(tmp_path) as store:
        stats = {"sent": 1, "received": 1, "drops": {}, "peers": {}}
        store.put_observed(beacons_key("p"), stats)
        assert [f.topic for f in check_beacons(store, pool)] == ["beacons"]
        stats["gossipDrops"] = {"leave not sent by its subject": 3}
        store.put_observed(beacons_key("p"), stats)
        gossip = [f for f in check_beacons(store, pool) if f.topic == "gossip"]
    assert len(gossip) == 1 and gossip[0].level == "warn"
    assert "leave not sent by its subject=3" in gossip[0].message
