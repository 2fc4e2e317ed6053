"""Where a device keeps its files: MESHNET_HOME (default ~/.meshnet) and its layout."""

from __future__ import annotations

import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


class HomeError(Exception):
    """MESHNET_HOME cannot be made private (it belongs to another user)."""


def default_home() -> Path:
    """$MESHNET_HOME, or ~/.meshnet."""
    env = os.environ.get("MESHNET_HOME")
    return Path(env).expanduser() if env else Path.home() / ".meshnet"


@dataclass(frozen=True)
class Home:
    """The files of one device (one agent)."""

    root: Path

    @classmethod
    def default(cls) -> Home:
        return cls(default_home())

    @property
    def state_db(self) -> Path:
        return self.root / "state.db"

    @property
    def node_key(self) -> Path:
        return self.root / "node.key"

    @property
    def node_config(self) -> Path:
        return self.root / "node.json"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def agent_lock(self) -> Path:
        return self.root / "agent.lock"

    @property
    def agent_socket(self) -> Path:
        """The agent's local API (a Unix socket, mode 0600, while the agent runs)."""
        return self.root / "agent.sock"

    def log_file(self, name: str) -> Path:
        """logs/<name>.log (agent, relay, control-plane)."""
        return self.logs / f"{name}.log"

    def pool_dir(self, pool_name: str) -> Path:
        """pools/<name>/: a pool's root key (admin only), certificates and metadata."""
        return self.root / "pools" / pool_name

    def ring_topology(self, pool_id: str) -> Path:
        return self.root / f"ring_topology_{pool_id}.json"


def make_private(root: Path) -> None:
    """Create ``root`` 0700, or tighten it to 0700 when group or others can read it.

    The home holds the node key, the pool root key and, in ``state.db``, the token keys
    that mint join proofs: no other local user may read it. A home this user does not
    own cannot be tightened, and is refused with the command that fixes it.
    """
    root.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    info = root.stat()
    if stat.S_IMODE(info.st_mode) & 0o077 == 0:
        return
    if info.st_uid != os.geteuid():
        raise HomeError(
            f"{root} is readable by group or others (mode {stat.S_IMODE(info.st_mode):o}) "
            f"and belongs to another user; fix it with: chmod 700 {root}"
        )
    os.chmod(root, PRIVATE_DIR)


def make_private_file(path: Path) -> None:
    """chmod 0600 a file of ours that exists (state.db and its -wal and -shm files)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return
    if stat.S_IMODE(info.st_mode) & 0o077 and info.st_uid == os.geteuid():
        os.chmod(path, PRIVATE_FILE)


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write a file so readers see the old or the new content, never a torn one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
