"""Huge pages for a process that loads a model: a restart with glibc's tunable.

A decode step reads every weight of the model once. In 4 KiB pages that is a TLB miss
every few kilobytes (the demo model's int8 share is about 110 MiB: some 28,000 pages a
token); in transparent huge pages (2 MiB) it is a few dozen. On the demo model at 2
threads, int8 decode went from 110-120 to 126-134 tok/s with them, at the same RSS.

Linux gives huge pages only to memory that asks for them (THP's default ``madvise``
mode), and glibc's malloc, which holds onnxruntime's packed weights, numpy's arrays and
ggml's, asks only when its tunable ``glibc.malloc.hugetlb=1`` is set. glibc reads
``GLIBC_TUNABLES`` once, when the process starts. So a command that loads a model
(:data:`MODEL_COMMANDS`), started without the tunable, starts itself again at once
with it (``exec``: the same process ID, arguments and standard streams), before it
imports anything heavy (``reconciler/launch.py``); the agents it starts inherit it. Other commands (``meshctl
get``, ...) do not pay the restart (about 30 ms).

Nothing is restarted with ``MESHNET_HUGE_PAGES=0``, where ``GLIBC_TUNABLES`` already
sets ``glibc.malloc.hugetlb`` (the user's value is kept), where glibc is older than 2.35
or absent (macOS, musl), or where THP is ``never``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

TUNABLES_ENV = "GLIBC_TUNABLES"
TUNABLE = "glibc.malloc.hugetlb"
SWITCH_ENV = "MESHNET_HUGE_PAGES"  # "0": never restart for huge pages
MODEL_COMMANDS = frozenset({"agent", "chat", "demo", "inference", "start"})
THP_SETTING = Path("/sys/kernel/mm/transparent_hugepage/enabled")
OLDEST_GLIBC = (2, 35)  # the first with glibc.malloc.hugetlb


def glibc_version() -> tuple[int, ...] | None:
    """This process's glibc version, or None (another C library, another system)."""
    try:
        name = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError, AttributeError):
        return None
    kind, _, version = name.partition(" ")
    if kind != "glibc":
        return None
    try:
        return tuple(int(n) for n in version.split(".")[:2])
    except ValueError:
        return None


def thp_available(setting: Path = THP_SETTING) -> bool:
    """Whether the kernel gives transparent huge pages at all (``always`` or ``madvise``)."""
    try:
        text = setting.read_text()
    except OSError:
        return False
    return "[always]" in text or "[madvise]" in text


def with_huge_pages(env: Mapping[str, str]) -> dict[str, str] | None:
    """``env`` with ``glibc.malloc.hugetlb=1`` added to ``GLIBC_TUNABLES``; None when
    the tunable is already set there or ``MESHNET_HUGE_PAGES=0``."""
    tunables = env.get(TUNABLES_ENV, "")
    names = {item.partition("=")[0].strip() for item in tunables.split(":")}
    if env.get(SWITCH_ENV, "").strip() == "0" or TUNABLE in names:
        return None
    value = f"{tunables}:{TUNABLE}=1" if tunables else f"{TUNABLE}=1"
    return {**env, TUNABLES_ENV: value}


def restart_env(
    argv: Sequence[str],
    env: Mapping[str, str],
    glibc: tuple[int, ...] | None,
    thp: bool,
    loads_model: bool = False,
) -> dict[str, str] | None:
    """The environment to start this command again in, or None to go on as it is
    (``loads_model``: whatever its arguments, as a bench that runs the engine)."""
    if not _supported(glibc, thp):
        return None
    if not loads_model and not any(arg in MODEL_COMMANDS for arg in argv[1:]):
        return None
    return with_huge_pages(env)


def _supported(glibc: tuple[int, ...] | None, thp: bool) -> bool:
    return glibc is not None and glibc >= OLDEST_GLIBC and thp


def supported() -> bool:
    """Whether this system can give this process huge pages through the tunable."""
    return _supported(glibc_version(), thp_available())


def huge_pages_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a process that will load a model (an agent, a bench's worker):
    ``env`` (default: this process's) with the tunable, where it applies."""
    base = dict(os.environ if env is None else env)
    if not supported():
        return base
    return with_huge_pages(base) or base


def restart_with_huge_pages(argv: Sequence[str] | None = None, loads_model: bool = False) -> None:
    """Start this command again with huge pages when it loads a model (see the module's
    text); returns only when it goes on as it is."""
    args = sys.argv if argv is None else argv
    env = restart_env(args, os.environ, glibc_version(), thp_available(), loads_model)
    if env is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
    except OSError:  # no restart: the command runs on, with 4 KiB pages
        return
