"""API keys: shown once, stored only as a SHA-256, verified in constant time, revoked
by deletion; `meshctl apikey` create/list/delete with -o json."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.apikeys import ApiKeyError, create_key, delete_key, list_keys, new_key, verify_key
from reconciler.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(tmp_path)


def test_only_the_hash_is_stored(store: Store, tmp_path: Path) -> None:
    key, record = create_key(store, "laptop")
    assert key.startswith(f"mesh_{record.key_id}_") and len(key) == 5 + 8 + 1 + 43
    row = store.db.execute("SELECT * FROM apikeys").fetchone()
    assert row["hash"] == hashlib.sha256(key.encode()).hexdigest()
    assert key.encode() not in (tmp_path / "state.db").read_bytes()


def test_verify_accepts_the_key_and_nothing_close_to_it(store: Store) -> None:
    key, record = create_key(store, "laptop", pool="lab")
    found = verify_key(store, key)
    assert found is not None and (found.name, found.pool) == ("laptop", "lab")
    tampered = key[:-1] + ("A" if key[-1] != "A" else "B")
    other_id = f"mesh_{'0' * 8 if record.key_id != '0' * 8 else '1' * 8}{key[13:]}"
    for bad in (tampered, other_id, key + "x", "", "Bearer " + key, key.upper()):
        assert verify_key(store, bad) is None, bad


def test_delete_revokes(store: Store) -> None:
    key, _ = create_key(store, "laptop")
    assert delete_key(store, "laptop")
    assert verify_key(store, key) is None
    assert not delete_key(store, "laptop")
    assert list_keys(store) == []


def test_names_are_unique_and_checked(store: Store) -> None:
    create_key(store, "laptop")
    with pytest.raises(ApiKeyError, match="exists"):
        create_key(store, "laptop")
    with pytest.raises(ApiKeyError, match="invalid key name"):
        create_key(store, "Bad Name")


def test_key_derivation_is_deterministic_in_its_randomness() -> None:
    random = bytes(range(36))
    assert new_key(random) == new_key(random)
    assert new_key(random)[0] == "00010203"


def test_meshctl_apikey_commands(tmp_path: Path) -> None:
    env = {**os.environ, "MESHNET_HOME": str(tmp_path)}

    def meshctl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "reconciler.entry", "apikey", *args], env=env,
                              capture_output=True, text=True, check=check)  # fmt: skip

    made = json.loads(meshctl("create", "ci", "-o", "json").stdout)
    assert made["name"] == "ci" and made["key"].startswith(f"mesh_{made['id']}_")
    listed = json.loads(meshctl("list", "-o", "json").stdout)["items"]
    assert listed == [{"name": "ci", "id": made["id"], "pool": None, "created": made["created"]}]
    assert made["key"] not in meshctl("list").stdout
    assert meshctl("delete", "ci").returncode == 0
    gone = meshctl("delete", "ci", check=False)
    assert gone.returncode == 1 and "no API key named 'ci'" in gone.stderr
