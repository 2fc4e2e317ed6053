"""install.sh on a fresh HOME: a virtualenv, the four commands linked into ~/.local/bin,
PATH added to ~/.bashrc once, and a second run that upgrades in place."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_install_twice_into_a_fresh_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "MESHNET_"))}
    env.update(HOME=str(home), MESHNET_VENV=str(tmp_path / "venv"))
    for _ in range(2):
        result = subprocess.run([str(REPO / "install.sh"), "--no-model"], env=env, capture_output=True,
                                text=True, timeout=600)  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        assert "mesh demo" in result.stdout
    for command in ("meshctl", "mesh", "mesh-relay", "mesh-control-plane"):
        link = home / ".local" / "bin" / command
        assert link.is_symlink() and link.resolve().parent == (tmp_path / "venv" / "bin").resolve()
    assert (home / ".bashrc").read_text().count("added by meshnet install.sh") == 1
    version = subprocess.run([str(home / ".local" / "bin" / "meshctl"), "version"], capture_output=True,
                             text=True, env=env, timeout=60)  # fmt: skip
    assert version.returncode == 0 and "meshctl" in version.stdout


def test_install_refuses_an_old_python(tmp_path: Path) -> None:
    fake = tmp_path / "python3.9"
    fake.write_text('#!/bin/sh\n[ "$1" = "-V" ] && echo \'Python 3.9.2\' && exit 0\nexit 1\n')
    fake.chmod(0o755)
    env = {**os.environ, "HOME": str(tmp_path), "PYTHON": str(fake)}
    result = subprocess.run(
        [str(REPO / "install.sh")], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "needs Python 3.11 or newer" in result.stderr and "3.9.2" in result.stderr


def readme_first_command() -> str:
    """The first line of the README's first bash block, without its comment."""
    text = (REPO / "README.md").read_text()
    block = text.split("```bash\n", 1)[1]
    return block.splitlines()[0].split("  #", 1)[0].strip()


@pytest.mark.slow
def test_readme_first_command_in_a_fresh_shell(tmp_path: Path) -> None:
    """Exactly the README's first line, in a clean HOME whose PATH lacks ~/.local/bin."""
    command = readme_first_command()
    assert command.startswith("./install.sh")
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k.startswith(("PIP_", "LANG", "LC_"))}
    env.update(HOME=str(home), PATH="/usr/bin:/bin", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    result = subprocess.run(["bash", "-c", command], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=1500)  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "command not found" not in output
    assert "the ring converged on both devices" in result.stdout
    assert "Stopped everything the demo started." in result.stdout
