"""The PostgreSQL schema and its migrations (a ``schema_version`` table).

Migrations run inside one transaction under an advisory lock, so instances
that start together cannot both apply them.
"""

from __future__ import annotations

from typing import Any

import psycopg

Conn = psycopg.AsyncConnection[Any]

# Advisory lock ids (any constants): one serializes migrations across
# instances starting together, one serializes revocation writers.
MIGRATION_LOCK = 0x5A_0000
REVOCATION_LOCK = 0x5A_0001

MIGRATIONS: list[str] = [
    # 1: initial schema (timestamps are epoch seconds, as everywhere in silentauth)
    """
    CREATE TABLE users (
        id text PRIMARY KEY,
        username text NOT NULL UNIQUE,
        password_hash text NOT NULL,
        created_at double precision NOT NULL
    );
    CREATE TABLE signing_keys (
        kid text PRIMARY KEY,
        alg text NOT NULL,
        private_blob bytea NOT NULL,
        public_jwk text NOT NULL,
        created_at double precision NOT NULL,
        not_after double precision NOT NULL
    );
    CREATE TABLE sessions (
        id text PRIMARY KEY,
        user_id text NOT NULL,
        username text NOT NULL,
        counter bigint NOT NULL,
        scope text NOT NULL,
        client_id text NOT NULL,
        auth_time double precision NOT NULL,
        created_at double precision NOT NULL,
        last_used_at double precision NOT NULL,
        rotated_at double precision NOT NULL,
        idle_expires_at double precision NOT NULL,
        expires_at double precision NOT NULL,
        user_agent text NOT NULL,
        ip text NOT NULL,
        revoked_at double precision,
        revoked_reason text
    );
    CREATE INDEX sessions_by_user ON sessions (user_id);
    CREATE TABLE revocations (
        seq bigserial PRIMARY KEY,
        session_id text NOT NULL,
        at double precision NOT NULL
    );
    CREATE INDEX revocations_by_time ON revocations (at);
    CREATE UNLOGGED TABLE rate_limits (
        key text PRIMARY KEY,
        slot bigint NOT NULL,
        count integer NOT NULL,
        expires_at double precision NOT NULL
    );
    """,
    # 2: registered clients
    """
    CREATE TABLE clients (
        client_id text PRIMARY KEY,
        secret_hash text NOT NULL,
        name text NOT NULL,
        created_at double precision NOT NULL
    );
    """,
    # 3: RFC 8707 resource indicators of a session
    """
    ALTER TABLE sessions ADD COLUMN resources text NOT NULL DEFAULT '';
    """,
    # 4: claims the application gave the session
    """
    ALTER TABLE sessions ADD COLUMN claims text NOT NULL DEFAULT '';
    """,
    # 5: hash of the Idempotency-Key of the last rotation
    """
    ALTER TABLE sessions ADD COLUMN rotation_key text NOT NULL DEFAULT '';
    """,
]

SESSION_COLS = (
    "id, user_id, username, counter, scope, client_id, auth_time, created_at, "
    "last_used_at, rotated_at, idle_expires_at, expires_at, user_agent, ip, "
    "revoked_at, revoked_reason, resources, claims, rotation_key"
)


async def migrate(conn: Conn) -> int:
    """Bring the schema up to date; return the version. Safe to race."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
        row = await (await conn.execute("SELECT max(version) FROM schema_version")).fetchone()
        current = int(row[0] or 0) if row else 0
        for version, script in enumerate(MIGRATIONS[current:], start=current + 1):
            await conn.execute(script)  # no parameters: sent as one simple query
            await conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
    return len(MIGRATIONS)
