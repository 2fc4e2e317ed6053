"""Unix sockets only this user can reach: bound under a temporary name, made mode 0600,
then renamed into place, so no other user ever sees them with a wider mode."""

from __future__ import annotations

import os
import socket
from pathlib import Path

MAX_UNIX_PATH = 107  # sun_path holds 108 bytes with the terminating NUL


def temporary_name(path: Path, suffix: str) -> Path | None:
    """The name a socket for ``path`` is bound under first; None when it is too long for
    a Unix socket address."""
    temporary = path.with_name(f".{os.getpid()}{suffix}")
    return None if len(os.fsencode(temporary)) > MAX_UNIX_PATH else temporary


def bind_private(temporary: Path, path: Path, kind: socket.SocketKind) -> socket.socket:
    """A non-blocking Unix socket of ``kind`` at ``path`` (replacing what is there), mode
    0600 from the start; on failure nothing is left behind."""
    temporary.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, kind)
    try:
        sock.bind(str(temporary))
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
        sock.setblocking(False)
    except OSError:
        sock.close()
        temporary.unlink(missing_ok=True)
        raise
    return sock
