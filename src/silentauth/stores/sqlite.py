"""The embedded store: one SQLite file in WAL mode.

Calls run on the event loop thread: a statement on a local WAL database takes
microseconds, far less than a hop to a thread pool. ``synchronous=NORMAL`` in
WAL mode keeps commits durable against process crashes (the WAL is on disk)
without an fsync per refresh; a power loss may lose the last rotations, which
the grace window and reuse detection turn into a clean re-login at worst.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from silentauth.core.files import create_private, warn_if_exposed
from silentauth.core.ports import (
    ClientRecord,
    RotateRequest,
    RotateResult,
    SessionRecord,
    StoredKey,
    User,
)
from silentauth.core.ratelimit import MemoryCounter
from silentauth.errors import AlreadyExists, StoreUnavailable
from silentauth.stores.base import session_record

MIGRATIONS: list[str] = [
    # 1: initial schema
    """
    CREATE TABLE users (
        id TEXT PRIMARY KEY,
        username TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE TABLE signing_keys (
        kid TEXT PRIMARY KEY,
        alg TEXT NOT NULL,
        private_blob BLOB NOT NULL,
        public_jwk TEXT NOT NULL,
        created_at REAL NOT NULL,
        not_after REAL NOT NULL
    );
    CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        username TEXT NOT NULL,
        counter INTEGER NOT NULL,
        scope TEXT NOT NULL,
        client_id TEXT NOT NULL,
        auth_time REAL NOT NULL,
        created_at REAL NOT NULL,
        last_used_at REAL NOT NULL,
        rotated_at REAL NOT NULL,
        idle_expires_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        user_agent TEXT NOT NULL,
        ip TEXT NOT NULL,
        revoked_at REAL,
        revoked_reason TEXT
    );
    CREATE INDEX sessions_by_user ON sessions (user_id);
    CREATE TABLE revocations (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        session_id TEXT NOT NULL,
        at REAL NOT NULL
    );
    """,
    # 2: registered clients
    """
    CREATE TABLE clients (
        client_id TEXT PRIMARY KEY,
        secret_hash TEXT NOT NULL,
        name TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    """,
    # 3: RFC 8707 resource indicators of a session
    """
    ALTER TABLE sessions ADD COLUMN resources TEXT NOT NULL DEFAULT '';
    """,
    # 4: claims the application gave the session
    """
    ALTER TABLE sessions ADD COLUMN claims TEXT NOT NULL DEFAULT '';
    """,
    # 5: hash of the Idempotency-Key of the last rotation
    """
    ALTER TABLE sessions ADD COLUMN rotation_key TEXT NOT NULL DEFAULT '';
    """,
]

_SESSION_COLS = (
    "id, user_id, username, counter, scope, client_id, auth_time, created_at, "
    "last_used_at, rotated_at, idle_expires_at, expires_at, user_agent, ip, "
    "revoked_at, revoked_reason, resources, claims, rotation_key"
)


def _path_from_url(url: str) -> str:
    rest = url.partition("://")[2]
    # sqlite:///rel.db -> "rel.db"; sqlite:////abs.db -> "/abs.db"
    path = rest[1:] if rest.startswith("/") else rest
    return path or ":memory:"


_FIELDS = tuple(name.strip() for name in _SESSION_COLS.split(","))

# The statements of the refresh hot path, built once: an f-string in the call
# would be rebuilt per refresh before sqlite3's statement cache could match it.
_ROTATE_SQL = (
    "UPDATE sessions SET counter = counter + 1, rotated_at = ?, last_used_at = ?, "
    "idle_expires_at = min(?, expires_at), rotation_key = ? "
    "WHERE id = ? AND counter = ? AND revoked_at IS NULL "
    "AND idle_expires_at > ? AND expires_at > ? "
    f"RETURNING {_SESSION_COLS}"
)
_GET_SQL = f"SELECT {_SESSION_COLS} FROM sessions WHERE id = ?"


@functools.cache
def _rotate_together_sql(size: int) -> str:
    """One ``UPDATE … FROM`` for ``size`` swaps of distinct sessions (``size`` a power of two).

    The same conditions as ``_ROTATE_SQL``, joined to a table of (id, counter,
    idle deadline, key hash) rows. SQLite walks the rows and finds each
    session by its primary key (the store tests pin that query plan).
    Rows beyond the batch's own are NULL, which matches no session: batch
    sizes are rounded up to a power of two so that at most eight statements
    exist, all of which stay in the connection's statement cache.
    """
    returning = ", ".join(f"sessions.{name}" for name in _FIELDS)
    return (
        f"WITH batch(id, counter, idle, key) AS (VALUES {', '.join(['(?, ?, ?, ?)'] * size)}) "
        "UPDATE sessions SET counter = sessions.counter + 1, rotated_at = ?, last_used_at = ?, "
        "idle_expires_at = min(batch.idle, sessions.expires_at), rotation_key = batch.key "
        "FROM batch WHERE sessions.id = batch.id AND sessions.counter = batch.counter "
        "AND sessions.revoked_at IS NULL AND sessions.idle_expires_at > ? AND sessions.expires_at > ? "
        f"RETURNING {returning}"
    )


_NOTHING = RotateResult(False, None)  # a placeholder, replaced before anyone reads it


_session = session_record


class SQLiteStore:
    """:class:`~silentauth.core.ports.Store` on a local SQLite file."""

    def __init__(self, url: str = "sqlite:///silentauth.db") -> None:
        self.path = _path_from_url(url)
        self._db: sqlite3.Connection | None = None
        self._lock = threading.RLock()
        self._counter = MemoryCounter()

    # -- lifecycle -----------------------------------------------------------

    async def open(self) -> None:
        self.open_sync()

    def open_sync(self) -> None:
        if self._db is not None:
            return
        if self.path != ":memory:":
            # Created 0600 before SQLite opens it: SQLite makes the -wal and -shm
            # files with the main file's mode, so all three stay owner-only.
            try:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                create_private(self.path)
            except OSError as exc:
                raise StoreUnavailable(f"cannot create SQLite database {self.path}: {exc}") from exc
            for suffix in ("", "-wal", "-shm"):
                warn_if_exposed(self.path + suffix, "SQLite database file")
        try:
            db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=5.0
            )
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=5000")
            db.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open SQLite database {self.path}: {exc}") from exc
        self._db = db
        self._migrate()

    async def close(self) -> None:
        with self._locked():
            if self._db is not None:
                self._db.close()
                self._db = None

    def _migrate(self) -> None:
        db = self._conn()
        with self._transaction():
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = db.execute("SELECT max(version) FROM schema_version").fetchone()
            current = row[0] or 0
            for version, script in enumerate(MIGRATIONS[current:], start=current + 1):
                for statement in filter(str.strip, script.split(";")):
                    db.execute(statement)
                db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))

    @property
    def schema_version(self) -> int:
        row = self._conn().execute("SELECT max(version) FROM schema_version").fetchone()
        return int(row[0] or 0)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise access and turn engine failures into :class:`StoreUnavailable`.

        Errors surface from ``fetchone()`` as well as from ``execute()`` (a full
        disk shows up while stepping ``UPDATE … RETURNING``), so the whole
        block is guarded, not the statement alone.
        """
        with self._lock:
            try:
                yield
            except sqlite3.IntegrityError:
                raise
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"SQLite: {exc}") from exc

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """:meth:`_locked`, inside one write transaction: committed, or rolled back on error."""
        with self._locked():
            db = self._conn()
            self._run("BEGIN IMMEDIATE")
            try:
                yield
                self._run("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreUnavailable("store is not open")
        return self._db

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        try:
            return self._conn().execute(sql, args)
        except sqlite3.IntegrityError:
            raise
        except sqlite3.OperationalError as exc:
            # "database is locked", "disk I/O error", "database or disk is full"
            raise StoreUnavailable(f"SQLite: {exc}") from exc

    # -- users ---------------------------------------------------------------

    async def add_user(self, user: User) -> None:
        with self._locked():
            try:
                self._run(
                    "INSERT INTO users (id, username, password_hash, created_at) VALUES (?, ?, ?, ?)",
                    (user.id, user.username, user.password_hash, user.created_at),
                )
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"user {user.username!r} exists") from None

    async def get_user(self, username: str) -> User | None:
        with self._locked():
            row = self._run(
                "SELECT id, username, password_hash, created_at FROM users WHERE username = ?",
                (username,),
            ).fetchone()
        return User(*row) if row else None

    async def list_users(self) -> list[User]:
        with self._locked():
            rows = self._run(
                "SELECT id, username, password_hash, created_at FROM users ORDER BY username"
            ).fetchall()
        return [User(*r) for r in rows]

    async def remove_user(self, username: str) -> bool:
        with self._locked():
            return self._run("DELETE FROM users WHERE username = ?", (username,)).rowcount > 0

    async def set_password(self, username: str, password_hash: str) -> bool:
        with self._locked():
            sql = "UPDATE users SET password_hash = ? WHERE username = ?"
            return self._run(sql, (password_hash, username)).rowcount > 0

    # -- clients -------------------------------------------------------------

    async def add_client(self, client: ClientRecord) -> None:
        with self._locked():
            try:
                self._run(
                    "INSERT INTO clients (client_id, secret_hash, name, created_at) VALUES (?, ?, ?, ?)",
                    (client.client_id, client.secret_hash, client.name, client.created_at),
                )
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"client {client.client_id!r} exists") from None

    async def get_client(self, client_id: str) -> ClientRecord | None:
        with self._locked():
            row = self._run(
                "SELECT client_id, secret_hash, name, created_at FROM clients WHERE client_id = ?",
                (client_id,),
            ).fetchone()
        return ClientRecord(*row) if row else None

    async def list_clients(self) -> list[ClientRecord]:
        with self._locked():
            rows = self._run(
                "SELECT client_id, secret_hash, name, created_at FROM clients ORDER BY client_id"
            ).fetchall()
        return [ClientRecord(*r) for r in rows]

    async def remove_client(self, client_id: str) -> bool:
        with self._locked():
            return self._run("DELETE FROM clients WHERE client_id = ?", (client_id,)).rowcount > 0

    # -- keys ----------------------------------------------------------------

    async def add_key(self, key: StoredKey) -> None:
        with self._locked():
            self._run(
                "INSERT INTO signing_keys VALUES (?, ?, ?, ?, ?, ?)",
                (key.kid, key.alg, key.private_blob, key.public_jwk, key.created_at, key.not_after),
            )

    async def list_keys(self) -> list[StoredKey]:
        with self._locked():
            rows = self._run(
                "SELECT kid, alg, private_blob, public_jwk, created_at, not_after "
                "FROM signing_keys ORDER BY created_at"
            ).fetchall()
        return [StoredKey(*r) for r in rows]

    # -- sessions ------------------------------------------------------------

    async def create_session(self, session: SessionRecord, limit: int = 0) -> list[str]:
        # One write transaction (BEGIN IMMEDIATE takes the write lock at once):
        # the count of live sessions and the insert cannot interleave with
        # another login's, in this process or another one on the same file.
        with self._transaction():
            ended = self._make_room(session, limit) if limit > 0 else []
            self._run(
                f"INSERT INTO sessions ({_SESSION_COLS}) VALUES ({', '.join('?' * len(_FIELDS))})",
                tuple(getattr(session, c) for c in _FIELDS),
            )
        return ended

    def _make_room(self, session: SessionRecord, limit: int) -> list[str]:
        now = session.created_at
        live = self._run(
            "SELECT id FROM sessions WHERE user_id = ? AND revoked_at IS NULL "
            "AND idle_expires_at > ? AND expires_at > ? ORDER BY created_at, id",
            (session.user_id, now, now),
        ).fetchall()
        ended = [str(r[0]) for r in live[: max(0, len(live) - (limit - 1))]]
        for sid in ended:
            self._run(
                "UPDATE sessions SET revoked_at = ?, revoked_reason = 'policy' WHERE id = ?", (now, sid)
            )
            self._run("INSERT INTO revocations (session_id, at) VALUES (?, ?)", (sid, now))
        return ended

    async def get_session(self, session_id: str) -> SessionRecord | None:
        with self._locked():
            row = self._run(_GET_SQL, (session_id,)).fetchone()
        return _session(row) if row else None

    async def rotate(
        self, session_id: str, counter: int, now: float, idle_expires_at: float, key_hash: str = ""
    ) -> RotateResult:
        with self._locked():
            return self._rotate_one(session_id, counter, now, idle_expires_at, key_hash)

    async def rotate_many(self, requests: Sequence[RotateRequest], now: float) -> list[RotateResult]:
        # One transaction for the batch (group commit): one write lock, one
        # WAL append, instead of one each per refresh. All or nothing: the
        # callers answer only after COMMIT, so no client holds a token the
        # database lost.
        if len(requests) == 1:
            r = requests[0]
            return [await self.rotate(r.session_id, r.counter, now, r.idle_expires_at, r.key_hash)]
        with self._transaction():
            return self._rotate_together(requests, now)

    def _rotate_together(self, requests: Sequence[RotateRequest], now: float) -> list[RotateResult]:
        """The swaps of a batch, with the results one after the other would give.

        The first request of each session swaps in one statement (a statement
        per swap cost about 4 µs more per refresh in a batch of 32: binding,
        stepping and resetting it from Python). A session's later requests in
        the batch (racing refreshes, a late token's double swap) then run one
        by one, in order, so each sees the effect of the ones before it.
        """
        first: dict[str, int] = {}
        later: list[int] = []
        for i, r in enumerate(requests):
            if r.session_id in first:
                later.append(i)
            else:
                first[r.session_id] = i
        size = 1 << (len(first) - 1).bit_length()
        args: list[Any] = []
        for i in first.values():
            r = requests[i]
            args += (r.session_id, r.counter, r.idle_expires_at, r.key_hash)
        args += (None,) * (4 * (size - len(first)))
        args += (now, now, now, now)
        swapped = {row[0]: row for row in self._run(_rotate_together_sql(size), tuple(args)).fetchall()}
        results: list[RotateResult] = [_NOTHING] * len(requests)
        for session_id, i in first.items():
            row = swapped.get(session_id)
            if row is not None:
                results[i] = RotateResult(True, _session(row))
            else:
                current = self._run(_GET_SQL, (session_id,)).fetchone()
                results[i] = RotateResult(False, _session(current) if current else None)
        for i in later:
            r = requests[i]
            results[i] = self._rotate_one(r.session_id, r.counter, now, r.idle_expires_at, r.key_hash)
        return results

    def _rotate_one(
        self, session_id: str, counter: int, now: float, idle_expires_at: float, key_hash: str = ""
    ) -> RotateResult:
        row = self._run(
            _ROTATE_SQL, (now, now, idle_expires_at, key_hash, session_id, counter, now, now)
        ).fetchone()
        if row is not None:
            return RotateResult(True, _session(row))
        current = self._run(_GET_SQL, (session_id,)).fetchone()
        return RotateResult(False, _session(current) if current else None)

    async def revoke_session(self, session_id: str, reason: str, now: float) -> bool:
        with self._transaction():
            n = self._run(
                "UPDATE sessions SET revoked_at = ?, revoked_reason = ? "
                "WHERE id = ? AND revoked_at IS NULL",
                (now, reason, session_id),
            ).rowcount
            if n:
                self._run("INSERT INTO revocations (session_id, at) VALUES (?, ?)", (session_id, now))
        return n > 0

    async def revoke_user_sessions(self, user_id: str, reason: str, now: float) -> list[str]:
        with self._transaction():
            ids = [
                r[0]
                for r in self._run(
                    "UPDATE sessions SET revoked_at = ?, revoked_reason = ? "
                    "WHERE user_id = ? AND revoked_at IS NULL RETURNING id",
                    (now, reason, user_id),
                ).fetchall()
            ]
            for sid in ids:
                self._run("INSERT INTO revocations (session_id, at) VALUES (?, ?)", (sid, now))
        return ids

    async def list_sessions(self, user_id: str) -> list[SessionRecord]:
        with self._locked():
            rows = self._run(
                f"SELECT {_SESSION_COLS} FROM sessions WHERE user_id = ? ORDER BY created_at",
                (user_id,),
            ).fetchall()
        return [_session(r) for r in rows]

    async def revocations_since(self, cursor: int) -> tuple[list[str], int]:
        with self._locked():
            rows = self._run(
                "SELECT seq, session_id FROM revocations WHERE seq > ? ORDER BY seq", (cursor,)
            ).fetchall()
        if not rows:
            return [], cursor
        return [r[1] for r in rows], int(rows[-1][0])

    async def purge(self, now: float, keep_revocations: float) -> int:
        horizon = now - keep_revocations
        with self._locked():
            n = self._run(
                "DELETE FROM sessions WHERE (revoked_at IS NOT NULL AND revoked_at < ?) "
                "OR expires_at < ? OR idle_expires_at < ?",
                (horizon, horizon, horizon),
            ).rowcount
            self._run("DELETE FROM revocations WHERE at < ?", (horizon,))
        return int(n)

    # -- rate limits -----------------------------------------------------------
    # One process owns an embedded store, so counters stay in memory: no write
    # per attempt on the refresh hot path.

    async def hit(self, key: str, window: int, now: float) -> int:
        return self._counter.hit(key, window, now)

    async def peek(self, key: str, window: int, now: float) -> int:
        return self._counter.peek(key, window, now)
