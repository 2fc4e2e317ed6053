"""Opening a second Store in a process keeps the first one's SQLite locks: another
process that closes its connection must not take the database for unused and delete
the write-ahead log under our feet (which corrupted agents' stores)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from manifests import Pool
from reconciler.store import Store

CLOSE_IN_ANOTHER_PROCESS = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("SELECT count(*) FROM objects").fetchone()
db.close()  # the last connection to close checkpoints and deletes the -wal file
"""


def test_a_second_store_keeps_the_first_ones_locks(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = Store.open(home)
    first.apply(Pool.model_validate({"metadata": {"name": "p"}, "spec": {}}))
    wal = home / "state.db-wal"
    assert wal.exists()
    second = Store.open(home)  # the agent opens several (threads, runtimes)
    subprocess.run([sys.executable, "-c", CLOSE_IN_ANOTHER_PROCESS, str(home / "state.db")], check=True)
    assert wal.exists(), "another process deleted the WAL while this one had the store open"
    assert first.get("Pool", "p") is not None
    second.close()
    first.close()
    assert sqlite3.connect(home / "state.db").execute("PRAGMA integrity_check").fetchone()[0] == "ok"
