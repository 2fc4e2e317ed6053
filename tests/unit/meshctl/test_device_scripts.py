"""Findings 3 and 10 through the quick-start scripts: device1.sh keeps the home and
.pool-info private (umask 077, no readable temporary file), device2.sh refuses a
readable .pool-info and hands the join token over in the environment, never in argv.
The project's commands are replaced by stubs that record what they were given, so
only the scripts' own behaviour is under test."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
TOKEN = "abcdef.0123456789abcdef"
STUB = r"""#!/usr/bin/env bash
name="$(basename "$0")"
{ printf '%s argv:' "$name"; printf ' %s' "$@"; printf '\n'
  printf '%s env-token:%s\n' "$name" "${MESHNET_JOIN_TOKEN:-}"; } >>"$STUB_LOG"
case "$name $1" in
    "mesh init") mkdir -p "$MESHNET_HOME"; echo '{}' >"$MESHNET_HOME/node.json" ;;
    "mesh pool-list") echo '[]' ;;
    "mesh pool-info") stat -L -c 'pool-info-stdout-mode:%a' /proc/self/fd/1 >>"$STUB_LOG"
                      echo "POOL_ID=pool-0123456789abcdef"; echo "JOIN_TOKEN=__TOKEN__" ;;
    "mesh-control-plane "*) echo 8080 >"$MESHNET_HOME/control-plane.port"; exec sleep 30 ;;
    "mesh-relay "*) exec sleep 30 ;;
esac
exit 0
""".replace("__TOKEN__", TOKEN)


def stubs(tmp: Path) -> dict[str, str]:
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    for tool in ("mesh", "meshctl", "mesh-relay", "mesh-control-plane"):
        (bin_dir / tool).write_text(STUB)
        (bin_dir / tool).chmod(0o755)
    home = tmp / "user"
    home.mkdir()
    return {
        "PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(home), "STUB_LOG": str(tmp / "stub.log"),
        "MESHNET_HOME": str(home / ".meshnet"), "LANG": "C",
    }  # fmt: skip


def run(script: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(REPO / script)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)  # fmt: skip


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_device1_keeps_the_home_and_pool_info_private(tmp_path: Path) -> None:
    env = stubs(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    result = run("device1.sh", env, work)
    assert result.returncode == 0, result.stderr
    home = Path(env["MESHNET_HOME"])
    assert mode(home) == 0o700 and mode(home / "logs") == 0o700
    assert mode(home / "node.json") == 0o600  # what mesh init writes inherits umask 077
    assert mode(work / ".pool-info") == 0o600
    log = Path(env["STUB_LOG"]).read_text()
    assert "pool-info-stdout-mode:600" in log  # the temporary file was never readable


def test_device2_refuses_a_readable_pool_info(tmp_path: Path) -> None:
    env = stubs(tmp_path)
    info = tmp_path / ".pool-info"
    info.write_text(f"POOL_ID=pool-0123456789abcdef\nJOIN_TOKEN={TOKEN}\n")
    os.chmod(info, 0o644)
    result = run("device2.sh", env, tmp_path)
    assert result.returncode != 0
    assert "readable by group or others" in result.stderr and f"chmod 600 {info}" in result.stderr
    log = Path(env["STUB_LOG"])
    assert not log.exists() or "pool-join" not in log.read_text()


def test_device2_passes_the_token_in_the_environment_not_argv(tmp_path: Path) -> None:
    env = stubs(tmp_path)
    info = tmp_path / ".pool-info"
    info.write_text(
        "POOL_ID=pool-0123456789abcdef\nPOOL_ROOT_PUBKEY=sha256:" + "a" * 64
        + f"\nPOOL_NAME=lab\nNETWORK_ID=net\nJOIN_TOKEN={TOKEN}\n"
    )  # fmt: skip
    os.chmod(info, 0o600)
    result = run("device2.sh", env, tmp_path)
    assert result.returncode == 0, result.stderr
    lines = Path(env["STUB_LOG"]).read_text().splitlines()
    join_argv = next(line for line in lines if line.startswith("mesh argv: pool-join"))
    assert TOKEN not in join_argv and "--token" not in join_argv
    assert all(TOKEN not in line for line in lines if " argv:" in line)
    env_lines = [line for line in lines if line.startswith("mesh env-token:")]
    assert f"mesh env-token:{TOKEN}" in env_lines  # pool-join got it
    assert env_lines[-1] == "mesh env-token:"  # mesh start no longer has it
