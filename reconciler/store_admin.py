"""The store's pool-administration tables: join tokens, approvals and revocations.

meshctl writes them (`token create`, `certificate approve`, `member revoke`); the
agent reads them on every store change and hands them to the beacon and gossip
machines. Token secrets are never stored: only the HMAC key derived from them.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace

from reconciler.certs.tokens import TokenRecord, generate_token
from reconciler.store import Store, isotime, utcnow


@dataclass(frozen=True)
class StoredToken:
    """A token record and the pool it admits to."""

    pool: str
    record: TokenRecord
    created: str


def put_token(store: Store, pool: str, record: TokenRecord) -> None:
    with store.transaction():
        store.db.execute(
            "INSERT OR REPLACE INTO tokens VALUES (?, ?, ?, ?, ?, ?, ?)",
            (record.token_id, pool, record.key.hex(), record.expires, record.usages_left,
             record.description, isotime(utcnow())),
        )  # fmt: skip


def issue_token(
    store: Store, pool: str, ttl: float, usages: int | None = None, description: str = ""
) -> tuple[str, TokenRecord]:
    """Make a fresh join token for a pool and store its record; the token is returned
    once and never stored."""
    token = generate_token(os.urandom(64))
    record = replace(TokenRecord.create(token, time.time(), ttl, usages), description=description)
    put_token(store, pool, record)
    return token, record


def tokens(store: Store, pool: str | None = None) -> list[StoredToken]:
    query, args = "SELECT * FROM tokens", tuple[str, ...]()
    if pool is not None:
        query, args = query + " WHERE pool = ?", (pool,)
    rows = store.db.execute(query + " ORDER BY created", args).fetchall()
    return [
        StoredToken(
            r["pool"],
            TokenRecord(r["token_id"], bytes.fromhex(r["key"]), r["expires"], r["usages_left"],
                        r["description"]),
            r["created"],
        )
        for r in rows
    ]  # fmt: skip


def set_token_usages(store: Store, token_id: str, usages_left: int | None) -> None:
    with store.transaction():
        store.db.execute(
            "UPDATE tokens SET usages_left = ? WHERE token_id = ?", (usages_left, token_id)
        )


def delete_token(store: Store, token_id: str) -> bool:
    with store.transaction():
        cursor = store.db.execute("DELETE FROM tokens WHERE token_id = ?", (token_id,))
    return cursor.rowcount > 0


def set_approval(store: Store, pool: str, node_id: str, state: str) -> None:
    with store.transaction():
        store.db.execute(
            "INSERT OR REPLACE INTO approvals VALUES (?, ?, ?, ?)",
            (pool, node_id, state, isotime(utcnow())),
        )


def approvals(store: Store, pool: str) -> dict[str, str]:
    rows = store.db.execute("SELECT node_id, state FROM approvals WHERE pool = ?", (pool,))
    return {r["node_id"]: r["state"] for r in rows.fetchall()}


def add_revocations(store: Store, pool: str, entries: dict[str, bytes]) -> None:
    """Record encoded revocation lists by the fingerprint they revoke."""
    with store.transaction():
        for fingerprint, encoded in entries.items():
            store.db.execute(
                "INSERT OR IGNORE INTO revocations VALUES (?, ?, ?, ?)",
                (pool, fingerprint, encoded.hex(), isotime(utcnow())),
            )


def revocations(store: Store, pool: str) -> dict[str, bytes]:
    rows = store.db.execute("SELECT fingerprint, list FROM revocations WHERE pool = ?", (pool,))
    return {r["fingerprint"]: bytes.fromhex(r["list"]) for r in rows.fetchall()}
