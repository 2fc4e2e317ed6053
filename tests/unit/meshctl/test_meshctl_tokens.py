"""Finding 10 in the CLI: the token `mesh pool-info --token` makes for device 2 admits
one device; `mesh pool-join` takes the token from the environment, a file or standard
input, and warns when it is given on the command line (visible in /proc)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from reconciler.entry import mesh_app
from reconciler.home import Home
from reconciler.store import Store
from reconciler.store_admin import tokens

runner = CliRunner()
TOKEN = "abcdef.0123456789abcdef"
POOL = ["--pool-id", "pool-0123456789abcdef", "--pool-root-pubkey", "sha256:" + "a" * 64,
        "--name", "lab", "--timeout", "0.2"]  # fmt: skip


def test_pool_info_makes_a_single_use_token(home: Home) -> None:
    assert runner.invoke(mesh_app, ["init", "--name", "admin"]).exit_code == 0
    assert runner.invoke(mesh_app, ["pool-create", "--name", "test-pool"]).exit_code == 0
    result = runner.invoke(mesh_app, ["pool-info", "--token"])
    assert result.exit_code == 0, result.output
    assert "JOIN_TOKEN=" in result.stdout
    more = runner.invoke(mesh_app, ["pool-info", "--token", "--token-usages", "3"])
    assert more.exit_code == 0
    with Store.open(home.root) as store:
        assert sorted(t.record.usages_left or 0 for t in tokens(store)) == [1, 3]


def _stored_token(home: Home) -> str:
    return (home.pool_dir("lab") / "join.token").read_text().strip()


def test_pool_join_reads_the_token_from_env_file_or_stdin(home: Home, tmp_path: Path) -> None:
    assert runner.invoke(mesh_app, ["init", "--name", "pi"]).exit_code == 0
    from_env = runner.invoke(mesh_app, ["pool-join", *POOL], env={"MESHNET_JOIN_TOKEN": TOKEN})
    assert _stored_token(home) == TOKEN and "command line" not in from_env.stderr
    (home.pool_dir("lab") / "join.token").unlink()
    runner.invoke(mesh_app, ["pool-join", *POOL, "--token-file", "-"], input=TOKEN + "\n")
    assert _stored_token(home) == TOKEN
    (home.pool_dir("lab") / "join.token").unlink()
    file = tmp_path / "token"
    file.write_text(TOKEN)
    runner.invoke(mesh_app, ["pool-join", *POOL, "--token-file", str(file)])
    assert _stored_token(home) == TOKEN
    on_argv = runner.invoke(mesh_app, ["pool-join", *POOL, "--token", TOKEN])
    assert "visible to other local users" in on_argv.stderr
    missing = runner.invoke(mesh_app, ["pool-join", *POOL, "--token-file", str(tmp_path / "no")])
    assert missing.exit_code == 1 and "cannot read the token file" in missing.stderr


def test_pool_join_records_the_memory_the_device_offers(home: Home) -> None:
    """``--memory-offer`` goes into the Member (bytes or a size with a unit) and stays when
    the device joins again without it; a size that is not one is refused before anything
    is written."""
    from manifests import Member

    assert runner.invoke(mesh_app, ["init", "--name", "pi"]).exit_code == 0
    env = {"MESHNET_JOIN_TOKEN": TOKEN}
    bad = runner.invoke(mesh_app, ["pool-join", *POOL, "--memory-offer", "lots"], env=env)
    assert bad.exit_code != 0 and "--memory-offer 'lots' is not a positive size" in bad.stderr
    with Store.open(home.root) as store:
        assert store.list("Member") == []
    runner.invoke(mesh_app, ["pool-join", *POOL, "--memory-offer", "2GiB"], env=env)
    with Store.open(home.root) as store:
        [member] = store.list("Member")
    assert isinstance(member, Member) and member.spec.capacity.memory_bytes == 2 << 30
    runner.invoke(mesh_app, ["pool-join", *POOL], env=env)  # again, without the option
    with Store.open(home.root) as store:
        [member] = store.list("Member")
    assert isinstance(member, Member) and member.spec.capacity.memory_bytes == 2 << 30
