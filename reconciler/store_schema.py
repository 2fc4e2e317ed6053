"""The object store's SQLite schema and its migrations (one list, applied in order)."""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: objects, events, inventory, observed state
    """
    CREATE TABLE objects (
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        uid TEXT NOT NULL UNIQUE,
        generation INTEGER NOT NULL,
        resource_version INTEGER NOT NULL,
        labels TEXT NOT NULL,
        annotations TEXT NOT NULL,
        spec TEXT NOT NULL,
        status TEXT NOT NULL,
        created TEXT NOT NULL,
        PRIMARY KEY (kind, name)
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        type TEXT NOT NULL,
        reason TEXT NOT NULL,
        message TEXT NOT NULL,
        count INTEGER NOT NULL DEFAULT 1
    );
    CREATE INDEX events_object ON events (kind, name);
    CREATE TABLE inventory (
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        source TEXT NOT NULL,
        PRIMARY KEY (kind, name)
    );
    CREATE TABLE revision (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        value INTEGER NOT NULL
    );
    INSERT INTO revision VALUES (1, 0);
    CREATE TABLE observed (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated TEXT NOT NULL
    );
    """,
    # 2: pool administration: join tokens, approvals, revocations (per pool name)
    """
    CREATE TABLE tokens (
        token_id TEXT PRIMARY KEY,
        pool TEXT NOT NULL,
        key TEXT NOT NULL,
        expires REAL NOT NULL,
        usages_left INTEGER,
        description TEXT NOT NULL,
        created TEXT NOT NULL
    );
    CREATE TABLE approvals (
        pool TEXT NOT NULL,
        node_id TEXT NOT NULL,
        state TEXT NOT NULL,
        updated TEXT NOT NULL,
        PRIMARY KEY (pool, node_id)
    );
    CREATE TABLE revocations (
        pool TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        list TEXT NOT NULL,
        created TEXT NOT NULL,
        PRIMARY KEY (pool, fingerprint)
    );
    """,
    # 3: join requests at scale: Members found by node ID through an index, denied
    # requests kept as bounded counters (one row per pool and reason), not objects
    """
    CREATE INDEX objects_node_id ON objects (kind, json_extract(status, '$.nodeId'));
    CREATE TABLE join_denials (
        pool TEXT NOT NULL,
        reason TEXT NOT NULL,
        count INTEGER NOT NULL,
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        last_source TEXT NOT NULL,
        last_device TEXT NOT NULL,
        PRIMARY KEY (pool, reason)
    );
    """,
    # 4: API keys of the OpenAI-compatible API (only a SHA-256 of each key is kept)
    """
    CREATE TABLE IF NOT EXISTS apikeys (
        name TEXT PRIMARY KEY,
        key_id TEXT NOT NULL UNIQUE,
        hash TEXT NOT NULL,
        pool TEXT,
        created TEXT NOT NULL
    );
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)
