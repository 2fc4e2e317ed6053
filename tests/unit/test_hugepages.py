"""The console scripts' start: a command that loads a model restarts itself once with
glibc's huge-page tunable; nothing else does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.hugepages import (
    SWITCH_ENV,
    TUNABLES_ENV,
    huge_pages_env,
    restart_env,
    supported,
    thp_available,
    with_huge_pages,
)

NEW_GLIBC = (2, 36)


@pytest.mark.parametrize(
    "argv",
    [["mesh", "inference", "--local"], ["mesh", "demo"], ["mesh", "start"],
     ["mesh", "chat", "--local"], ["meshctl", "--home", "/h", "agent"]],
)  # fmt: skip
def test_a_model_loading_command_restarts_with_the_tunable(argv: list[str]) -> None:
    env = restart_env(argv, {"HOME": "/home/u"}, NEW_GLIBC, thp=True)
    assert env == {"HOME": "/home/u", TUNABLES_ENV: "glibc.malloc.hugetlb=1"}


@pytest.mark.parametrize(
    "argv", [["meshctl", "get", "pools"], ["mesh", "pool-peers"], ["mesh"], ["mesh", "--help"]]
)
def test_other_commands_go_on_without_a_restart(argv: list[str]) -> None:
    assert restart_env(argv, {}, NEW_GLIBC, thp=True) is None
    restart = restart_env(argv, {}, NEW_GLIBC, thp=True, loads_model=True)  # a bench, say
    assert restart == {TUNABLES_ENV: "glibc.malloc.hugetlb=1"}


@pytest.mark.parametrize(
    ("glibc", "thp"), [(None, True), ((2, 34), True), ((2, 36), False)]
)  # fmt: skip
def test_no_restart_where_the_tunable_or_thp_is_missing(
    glibc: tuple[int, ...] | None, thp: bool
) -> None:
    assert restart_env(["mesh", "inference"], {}, glibc, thp) is None


def test_tunables_already_set_are_kept_and_the_switch_turns_it_off() -> None:
    added = with_huge_pages({TUNABLES_ENV: "glibc.malloc.arena_max=2"})
    assert added is not None
    assert added[TUNABLES_ENV] == "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"
    assert with_huge_pages({TUNABLES_ENV: "glibc.malloc.hugetlb=0"}) is None  # the user's
    assert with_huge_pages({TUNABLES_ENV: "a=1:glibc.malloc.hugetlb=2"}) is None
    assert with_huge_pages({SWITCH_ENV: "0"}) is None
    assert with_huge_pages({SWITCH_ENV: "1"}) == {
        SWITCH_ENV: "1",
        TUNABLES_ENV: "glibc.malloc.hugetlb=1",
    }


def test_the_kernel_setting_is_read_from_its_file(tmp_path: Path) -> None:
    setting = tmp_path / "enabled"
    for text, expected in (("always [madvise] never\n", True), ("[always] madvise never", True),
                           ("always madvise [never]\n", False)):  # fmt: skip
        setting.write_text(text)
        assert thp_available(setting) is expected
    assert thp_available(tmp_path / "missing") is False


def test_an_agents_environment_gets_the_tunable_where_it_applies() -> None:
    env = huge_pages_env({"PATH": "/bin"})
    assert env.get(TUNABLES_ENV) == ("glibc.malloc.hugetlb=1" if supported() else None)
    assert env["PATH"] == "/bin"


PROBE = (
    "import os, sys\n"
    "from reconciler.hugepages import restart_with_huge_pages\n"
    "print(os.getpid(), flush=True)\n"
    "restart_with_huge_pages()\n"
    "print(os.getpid(), os.environ.get('GLIBC_TUNABLES'), sys.argv[1:])\n"
)


@pytest.mark.skipif(
    not supported(),
    reason="no glibc with the huge-page tunable, or THP is off: nothing to restart for",
)
def test_the_restart_is_the_same_process_with_the_same_arguments() -> None:
    env = {k: v for k, v in os.environ.items() if k not in (TUNABLES_ENV, SWITCH_ENV)}
    done = subprocess.run([sys.executable, "-c", PROBE, "inference", "--local"], env=env,
                          capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    first, again_first, last = done.stdout.splitlines()  # the script ran twice
    pid, tunables, argv = last.split(" ", 2)
    assert pid == first == again_first  # exec, not a child
    assert tunables == "glibc.malloc.hugetlb=1"
    assert argv == "['inference', '--local']"
    again = subprocess.run([sys.executable, "-c", PROBE, "get"], env=env, capture_output=True,
                           text=True, timeout=60, check=True)  # fmt: skip
    assert again.stdout.splitlines()[-1].split(" ")[1] == "None"  # ran once: no restart
    assert len(again.stdout.splitlines()) == 2
