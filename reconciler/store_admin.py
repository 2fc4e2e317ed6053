"""The store's pool-administration tables: join tokens, approvals and revocations.

meshctl writes them (`token create`, `certificate approve`, `member revoke`); the
agent reads them on every store change and hands them to the beacon and gossip
machines. Token secrets are never stored: only the HMAC key derived from them.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from reconciler.certs.tokens import TokenRecord, generate_token
from reconciler.store import Store, isotime, utcnow

if TYPE_CHECKING:
    from reconciler.certs.root import PoolRoot


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


def charge_token(store: Store, token_id: str, now: float) -> bool:
    """Spend one use of a token, atomically: True if it was usable (unexpired, uses left).

    The agent and the control plane both admit with the same tokens; one conditional
    UPDATE is the only place a use is spent, so an N-use token admits at most N keys
    whoever answers and however concurrently."""
    with store.transaction():
        cursor = store.db.execute(
            "UPDATE tokens SET usages_left = usages_left - 1 WHERE token_id = ? AND expires > ? "
            "AND (usages_left IS NULL OR usages_left > 0)",
            (token_id, now),
        )
    return cursor.rowcount == 1


def delete_token(store: Store, token_id: str) -> bool:
    with store.transaction():
        cursor = store.db.execute("DELETE FROM tokens WHERE token_id = ?", (token_id,))
    return cursor.rowcount > 0


MAX_DENIAL_REASONS = 32  # rows per pool; further reasons are counted under "other"


@dataclass(frozen=True)
class DenialCount:
    """How often join requests were refused for one reason, and the latest of them."""

    pool: str
    reason: str
    count: int
    first_seen: str
    last_seen: str
    last_source: str
    last_device: str


def count_denial(store: Store, pool: str, reason: str, source: str, device: str) -> None:
    """Count a refused join request (no object, no event: a flood stays a few rows)."""
    now = isotime(utcnow())
    with store.transaction():
        known = store.db.execute(
            "SELECT COUNT(*) FROM join_denials WHERE pool = ?", (pool,)
        ).fetchone()[0]
        exists = store.db.execute(
            "SELECT 1 FROM join_denials WHERE pool = ? AND reason = ?", (pool, reason)
        ).fetchone()
        if exists is None and known >= MAX_DENIAL_REASONS - 1:
            reason = "other"
        store.db.execute(
            "INSERT INTO join_denials VALUES (?, ?, 1, ?, ?, ?, ?) ON CONFLICT (pool, reason) "
            "DO UPDATE SET count = count + 1, last_seen = excluded.last_seen, "
            "last_source = excluded.last_source, last_device = excluded.last_device",
            (pool, reason[:120], now, now, source[:64], device[:64]),
        )


def denials(store: Store, pool: str | None = None) -> list[DenialCount]:
    query, args = "SELECT * FROM join_denials", tuple[str, ...]()
    if pool is not None:
        query, args = query + " WHERE pool = ?", (pool,)
    rows = store.db.execute(query + " ORDER BY count DESC", args).fetchall()
    return [DenialCount(*tuple(r)) for r in rows]


def member_name_by_node_id(store: Store, node_id: str) -> str | None:
    """The Member recorded for a node ID (through the objects_node_id index)."""
    row = store.db.execute(
        "SELECT name FROM objects WHERE kind = 'Member' AND json_extract(status, '$.nodeId') = ?",
        (node_id,),
    ).fetchone()
    return None if row is None else str(row["name"])


def pending_member_names(store: Store) -> list[str]:
    """Members waiting for approval, oldest first."""
    rows = store.db.execute(
        "SELECT name FROM objects WHERE kind = 'Member' AND "
        "json_extract(status, '$.phase') = 'Pending' ORDER BY resource_version"
    ).fetchall()
    return [str(r["name"]) for r in rows]


def drop_pending_member(store: Store, name: str) -> None:
    """Forget a pending join request: its Member and its events."""
    store.delete("Member", name)
    with store.transaction():
        store.db.execute("DELETE FROM events WHERE kind = 'Member' AND name = ?", (name,))


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


def record_revocation(
    store: Store, root: PoolRoot, fingerprint: str, now: float, reason: str = ""
) -> None:
    """Sign a revocation of ``fingerprint`` with the pool's root and record it."""
    from reconciler.certs.revocation import RevocationList, revoke  # crypto: only when revoking

    entry = revoke(root, fingerprint, now, reason[:100])
    encoded = RevocationList(root.anchor, [entry]).encode()
    add_revocations(store, root.name, {fingerprint: encoded})


def revocations(store: Store, pool: str) -> dict[str, bytes]:
    rows = store.db.execute("SELECT fingerprint, list FROM revocations WHERE pool = ?", (pool,))
    return {r["fingerprint"]: bytes.fromhex(r["list"]) for r in rows.fetchall()}
