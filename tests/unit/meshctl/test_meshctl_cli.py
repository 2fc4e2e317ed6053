"""meshctl and mesh through typer's runner: outputs, exit codes, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reconciler.entry import mesh_app
from reconciler.entry import meshctl_app as app
from reconciler.home import Home

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "01-single-device" / "pool.yaml"
runner = CliRunner()


def meshctl(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_init_makes_a_private_key_and_refuses_to_overwrite(home: Home) -> None:
    code, out, _ = meshctl("init", "--network-id", "lab", "--name", "dev1", "-o", "json")
    assert code == 0
    info = json.loads(out)
    assert info["nodeId"].startswith("node-") and info["networkId"] == "lab"
    assert home.node_key.stat().st_mode & 0o777 == 0o600
    code, _, err = meshctl("init", "--name", "dev1")
    assert code == 1 and "--force" in err
    code, out, _ = meshctl("init", "--name", "dev2", "--force", "-o", "json")
    assert code == 0 and json.loads(out)["nodeId"] != info["nodeId"]


def test_apply_get_describe_delete(home: Home) -> None:
    assert meshctl("apply", "-f", str(EXAMPLE))[1].strip() == "pool/test-pool created"
    assert meshctl("apply", "-f", str(EXAMPLE))[1].strip() == "pool/test-pool unchanged"
    code, out, _ = meshctl("get", "pools", "-o", "json")
    listing = json.loads(out)
    assert code == 0 and listing["kind"] == "List"
    assert [i["metadata"]["name"] for i in listing["items"]] == ["test-pool"]
    code, out, _ = meshctl("get", "po", "test-pool", "-o", "json")
    assert json.loads(out)["kind"] == "Pool"
    code, out, _ = meshctl("get", "pool", "test-pool", "-o", "yaml")
    assert "kind: Pool" in out and "networkId: test-network" in out
    code, out, _ = meshctl("get", "pools")
    assert "test-pool" in out and "ADMISSION" in out
    code, out, _ = meshctl("describe", "pool", "test-pool")
    assert code == 0 and "Conditions:" in out and "Events:" in out
    code, out, _ = meshctl("delete", "pool", "test-pool")
    assert code == 0 and "deleted" in out
    code, _, err = meshctl("get", "pool", "test-pool")
    assert code == 1 and "not found" in err


def test_apply_from_stdin_and_dry_run(home: Home) -> None:
    text = EXAMPLE.read_text()
    code, out, _ = meshctl("apply", "-f", "-", "--dry-run", stdin=text)
    assert code == 0 and "created (dry run)" in out
    assert json.loads(meshctl("get", "pools", "-o", "json")[1])["items"] == []
    code, out, _ = meshctl("apply", "-f", "-", stdin=text)
    assert "created" in out


def test_invalid_manifest_applies_nothing(home: Home, tmp_path: Path) -> None:
    bad = tmp_path / "two.yaml"
    bad.write_text(
        EXAMPLE.read_text()
        + "---\n"
        + EXAMPLE.read_text().replace("test-pool", "b").replace("token", "never")
    )
    code, _, err = meshctl("apply", "-f", str(bad))
    assert code == 1
    assert "two.yaml:21:3 spec.admission" in err
    assert json.loads(meshctl("get", "pools", "-o", "json")[1])["items"] == []


def test_diff_exit_codes(home: Home, tmp_path: Path) -> None:
    assert meshctl("diff", "-f", str(EXAMPLE))[0] == 1
    meshctl("apply", "-f", str(EXAMPLE))
    assert meshctl("diff", "-f", str(EXAMPLE))[0] == 0
    changed = tmp_path / "p.yaml"
    changed.write_text(EXAMPLE.read_text().replace("admission: token", "admission: auto"))
    code, out, _ = meshctl("diff", "-f", str(changed))
    assert code == 1 and "+  admission: auto" in out
    assert meshctl("diff", "-f", str(tmp_path / "missing.yaml"))[0] == 2


def test_unknown_kind_and_format_are_clear_errors(home: Home) -> None:
    code, _, err = meshctl("get", "deployments")
    assert code == 1 and "unknown kind" in err
    code, _, err = meshctl("get", "pools", "-o", "xml")
    assert code == 1 and "unknown output format" in err


def test_schema_and_version(home: Home) -> None:
    code, out, _ = meshctl("schema", "pool")
    assert code == 0 and json.loads(out)["title"] == "Pool"
    code, out, _ = meshctl("version", "-o", "json")
    assert json.loads(out)["apiVersion"] == "meshnet.dev/v1alpha1"


def test_events_lists_what_happened(home: Home) -> None:
    mesh_runner = runner.invoke(mesh_app, ["init", "--name", "d1"])
    assert mesh_runner.exit_code == 0
    result = runner.invoke(mesh_app, ["pool-create", "--name", "test-pool"])
    assert result.exit_code == 0, result.stderr
    _code, out, _ = meshctl("events", "-o", "json")
    reasons = [e["reason"] for e in json.loads(out)["items"]]
    assert reasons == ["PoolRootCreated", "RootReady"]


def test_mesh_pool_create_prints_credentials(home: Home) -> None:
    result = runner.invoke(mesh_app, ["pool-create", "--name", "test-pool"])
    assert result.exit_code == 1 and "meshctl init" in result.stderr
    runner.invoke(mesh_app, ["init", "--network-id", "test", "--name", "d1"])
    result = runner.invoke(mesh_app, ["pool-create", "--name", "test-pool"])
    assert result.exit_code == 0
    assert "Pool ID:              pool-" in result.stdout
    assert "Pool Root Public Key: sha256:" in result.stdout
    assert (home.pool_dir("test-pool") / "root.key").stat().st_mode & 0o777 == 0o600
    result = runner.invoke(mesh_app, ["pool-list", "-o", "json"])
    (item,) = json.loads(result.stdout)["items"]
    assert item["status"]["role"] == "admin" and item["spec"]["networkId"] == "test"
    result = runner.invoke(mesh_app, ["pool-create", "--name", "test-pool"])
    assert result.exit_code == 1 and "already exists" in result.stderr


@pytest.mark.parametrize(
    "args", [["--help"], ["get", "--help"], ["apply", "--help"], ["agent", "--help"]]
)
def test_help(args: list[str]) -> None:
    assert runner.invoke(app, args).exit_code == 0
