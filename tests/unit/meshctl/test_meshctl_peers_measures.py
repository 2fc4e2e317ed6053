"""`get peers` shows what the plan measures: RTT, THROUGHPUT, SPEED, FREE MEM."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from meshctl.observed_cmd import measure_cells
from reconciler.entry import mesh_app
from reconciler.entry import meshctl_app as app
from reconciler.home import Home
from reconciler.store import Store

runner = CliRunner()
MEASURED = {
    "nodeId": "node-b", "name": "b", "address": "10.0.0.2:1", "status": "ONLINE",
    "rttSeconds": 0.000423, "throughputBytesPerSecond": 118_000_000,
    "speedBytesPerSecond": 7_200_000_000, "freeMemoryBytes": 3 << 30,
}  # fmt: skip
UNMEASURED = {
    "nodeId": "node-c", "name": "c", "address": "10.0.0.3:1", "status": "ONLINE",
    "rttSeconds": None, "throughputBytesPerSecond": None,
    "speedBytesPerSecond": None, "freeMemoryBytes": None,
}  # fmt: skip


def _pool_with_peers(home: Home) -> None:
    assert runner.invoke(mesh_app, ["init", "--name", "admin"]).exit_code == 0
    assert runner.invoke(mesh_app, ["pool-create", "--name", "test-pool"]).exit_code == 0
    with Store.open(home.root) as store:
        store.put_observed("peers/test-pool", [MEASURED, UNMEASURED])


def test_cells_format_figures_and_dash_when_unmeasured() -> None:
    assert measure_cells(MEASURED) == ["0.42ms", "118.0MB/s", "7.2GB/s", "3.0GiB"]
    assert measure_cells(UNMEASURED) == ["-", "-", "-", "-"]
    assert measure_cells({"nodeId": "node-old"}) == ["-", "-", "-", "-"]  # an older agent


def test_wide_listing_has_the_measure_columns(home: Home) -> None:
    _pool_with_peers(home)
    result = runner.invoke(app, ["get", "peers", "-o", "wide"], env={"COLUMNS": "400"})
    assert result.exit_code == 0
    header, *rows = [line for line in result.stdout.splitlines() if line.strip()]
    for column in ("RTT", "THROUGHPUT", "SPEED", "FREE MEM"):
        assert column in header
    measured = next(r for r in rows if "node-b" in r)
    assert "0.42ms" in measured and "118.0MB/s" in measured and "7.2GB/s" in measured
    unmeasured = next(r for r in rows if "node-c" in r)
    assert unmeasured.rstrip().endswith("-")
    narrow = runner.invoke(app, ["get", "peers"], env={"COLUMNS": "400"}).stdout
    assert "THROUGHPUT" not in narrow


def test_json_and_yaml_carry_the_fields(home: Home) -> None:
    _pool_with_peers(home)
    items = json.loads(runner.invoke(app, ["get", "peers", "-o", "json"]).stdout)["items"]
    assert items[0]["rttSeconds"] == 0.000423 and items[1]["rttSeconds"] is None
    assert items[0]["speedBytesPerSecond"] == 7_200_000_000
    yaml_out = runner.invoke(app, ["get", "peers", "-o", "yaml"]).stdout
    assert "throughputBytesPerSecond: 118000000" in yaml_out


SELF = {"speedBytesPerSecond": 7_200_000_000, "freeMemoryBytes": 3 << 30,
        "selftest": {"kernels": "onnxruntime", "activations": "int8", "threads": 2, "runs": 40}}  # fmt: skip


def test_describe_pool_shows_this_devices_speed_and_memory(home: Home) -> None:
    _pool_with_peers(home)
    with Store.open(home.root) as store:
        store.put_observed("gossip/test-pool", {"rounds": 1, "measured": SELF})
    out = runner.invoke(app, ["describe", "pool", "test-pool"], env={"COLUMNS": "400"}).stdout
    assert "kernel speed 7.2GB/s (onnxruntime, int8 activations, 2 threads)" in out
    assert "free memory 3.0GiB" in out and "offer" not in out


def test_describe_pool_says_when_free_memory_is_the_devices_offer(home: Home) -> None:
    _pool_with_peers(home)
    offered = {**SELF, "memoryOfferBytes": 3 << 30}
    with Store.open(home.root) as store:
        store.put_observed("gossip/test-pool", {"rounds": 1, "measured": offered})
    out = runner.invoke(app, ["describe", "pool", "test-pool"], env={"COLUMNS": "400"}).stdout
    assert "free memory 3.0GiB (at most its offer, 3.0GiB)" in out


def test_doctor_warns_when_the_self_test_has_not_run(tmp_path: Path) -> None:
    from manifests.pool import Pool
    from meshctl.doctor_checks import check_links, check_measures

    pool = Pool.model_validate(
        {"apiVersion": "meshnet.dev/v1alpha1", "kind": "Pool", "metadata": {"name": "p"}}
    )
    with Store.open(tmp_path) as store:
        assert check_measures(store, pool) == []  # no agent: nothing to say
        store.put_observed("gossip/p", {"measured": SELF})
        [ok] = check_measures(store, pool)
        store.put_observed("gossip/p", {"measured": {**SELF, "speedBytesPerSecond": None,
                                                     "selftest": None}})  # fmt: skip
        [warn] = check_measures(store, pool)
        store.put_observed("peers/p", [MEASURED])
        link = check_links(store, pool)[0]
    assert ok.level == "ok" and "7.2GB/s" in ok.message
    assert warn.level == "warn" and "self-test not run" in warn.message
    assert "rtt 0.42ms, throughput 118.0MB/s" in link.message
