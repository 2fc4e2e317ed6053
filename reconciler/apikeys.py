"""API keys for clients of the OpenAI-compatible API that are not pool members.

A key is ``mesh_<id>_<secret>``: ``id`` is 8 hex characters that name the key's row
(shown by ``meshctl apikey list``), ``secret`` 32 random bytes in URL-safe base64. The
key is shown once, at creation; the store keeps only its SHA-256 (a key has 256 bits of
entropy, so a fast hash is enough: there is nothing to brute-force). Deleting the row
revokes the key at the next request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import sqlite3
from dataclasses import dataclass

from reconciler.store import Store, StoreError, isotime, utcnow

PREFIX = "mesh"
NAME_PATTERN = re.compile(r"^[a-z0-9]([-a-z0-9_.]{0,61}[a-z0-9])?$")
_KEY = re.compile(r"^mesh_([0-9a-f]{8})_([A-Za-z0-9_-]{43})$")


class ApiKeyError(StoreError):
    """A key name that is invalid, taken or unknown."""


@dataclass(frozen=True)
class ApiKey:
    """A stored key (never its secret)."""

    name: str
    key_id: str
    pool: str | None
    created: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key(random: bytes) -> tuple[str, str]:
    """(key id, full key) from 36 random bytes."""
    if len(random) < 36:
        raise ValueError("need 36 random bytes")
    key_id = random[:4].hex()
    secret = base64.urlsafe_b64encode(random[4:36]).decode().rstrip("=")
    return key_id, f"{PREFIX}_{key_id}_{secret}"


def create_key(store: Store, name: str, pool: str | None = None) -> tuple[str, ApiKey]:
    """Make and store a key; (the key, shown once; its record)."""
    if not NAME_PATTERN.match(name):
        raise ApiKeyError(f"invalid key name {name!r}: lowercase letters, digits, - _ .")
    key_id, key = new_key(os.urandom(36))
    created = isotime(utcnow())
    try:
        with store.transaction():
            store.db.execute(
                "INSERT INTO apikeys VALUES (?, ?, ?, ?, ?)",
                (name, key_id, hash_key(key), pool, created),
            )
    except sqlite3.IntegrityError as err:
        raise ApiKeyError(
            f"an API key named {name!r} exists (meshctl apikey delete {name})"
        ) from err
    return key, ApiKey(name, key_id, pool, created)


def list_keys(store: Store) -> list[ApiKey]:
    rows = store.db.execute("SELECT * FROM apikeys ORDER BY created, name").fetchall()
    return [ApiKey(r["name"], r["key_id"], r["pool"], r["created"]) for r in rows]


def delete_key(store: Store, name: str) -> bool:
    """Revoke a key; whether it existed."""
    with store.transaction():
        cursor = store.db.execute("DELETE FROM apikeys WHERE name = ?", (name,))
    return cursor.rowcount > 0


def verify_key(store: Store, key: str) -> ApiKey | None:
    """The record of a valid key, or None (malformed, unknown, revoked or wrong secret)."""
    match = _KEY.match(key)
    if match is None:
        return None
    row = store.db.execute("SELECT * FROM apikeys WHERE key_id = ?", (match[1],)).fetchone()
    if row is None or not hmac.compare_digest(row["hash"], hash_key(key)):
        return None
    return ApiKey(row["name"], row["key_id"], row["pool"], row["created"])
