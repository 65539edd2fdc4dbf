"""The shared store on PostgreSQL (psycopg 3, one async connection pool).

Many instances behind a load balancer share one database. Connections run in
autocommit, so every single-statement operation costs one round trip:

- :meth:`PostgresStore.rotate` is one ``UPDATE … WHERE counter = $c AND <live>
  RETURNING``; row locks make racing refreshes on any instance serialize, and
  exactly one of them swaps. Only the losers read the row back, in a second
  statement whose fresh snapshot sees the winner's commit (a CTE would read
  the pre-swap snapshot and report a counter the winner already moved).
- :meth:`PostgresStore.rotate_many` swaps a batch in one statement and one
  round trip: its rows, named by arrays, locked in id order (``SELECT … FOR
  UPDATE``), then ``UPDATE … FROM`` them ``RETURNING``; the locked rows
  answer the losers (a row locked ``FOR UPDATE`` is its latest committed
  version, not the statement's snapshot, so a loser sees the winner's swap).
- Revocations append to ``revocations`` (``bigserial`` cursor). Writers take a
  transaction-scoped advisory lock first, so sequence numbers commit in order
  and a reader can never skip a number that commits late.
- Rate-limit counters are one upsert into an UNLOGGED table: shared by every
  instance, and not worth WAL traffic.

Failures: anything that means "the database cannot be reached" (connection
refused or lost, pool exhausted, server shutting down) becomes
:class:`~silentauth.errors.StoreUnavailable`, never a driver exception and
never a ``None`` that the core would read as "no such session". A statement
that fails because an idle pooled connection died (the server restarted) is
retried once on a fresh connection; every write here is safe to repeat (a
repeated rotation reads as a grace hit, a repeated revocation as done).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import psycopg
import psycopg_pool

from silentauth.core.ports import (
    ClientRecord,
    RotateRequest,
    RotateResult,
    SessionRecord,
    StoredKey,
    User,
)
from silentauth.errors import AlreadyExists, StoreUnavailable
from silentauth.stores.base import rotate_each, session_record
from silentauth.stores.postgres_schema import (
    REVOCATION_LOCK,
    SESSION_COLS,
    Conn,
    migrate,
)

T = TypeVar("T")

_CONNECTION_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError, psycopg_pool.PoolTimeout)


def _reason(exc: BaseException) -> str:
    """The server's or libpq's own words (refused, no such role/database), on one line.

    libpq's messages name host, port, user and database, never the password.
    """
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _clean(args: Sequence[Any]) -> tuple[Any, ...]:
    """PostgreSQL text cannot hold NUL; other engines can. A NUL from a request
    (a form field, a path) becomes U+FFFD instead of an error, so an odd input
    reads as "not found" or is stored legibly, never as a 500."""
    return tuple(a.replace("\x00", "\ufffd") if isinstance(a, str) else a for a in args)


_session = session_record

_ROTATE = (
    "UPDATE sessions SET counter = counter + 1, rotated_at = %s, last_used_at = %s, "
    "idle_expires_at = least(%s, expires_at), rotation_key = %s "
    "WHERE id = %s AND counter = %s AND revoked_at IS NULL "
    "AND idle_expires_at > %s AND expires_at > %s "
    f"RETURNING {SESSION_COLS}"
)
_CURRENT = f"SELECT {SESSION_COLS} FROM sessions WHERE id = %s"

# A batch's first swap of each session, in one statement. ``locked`` takes
# the batch's rows with FOR UPDATE in id order (the lock step sits above the
# sort), so two instances' batches over the same sessions lock in the same
# order and cannot deadlock; the UPDATE touches only rows it joins to
# ``locked``, hence already locked. A row locked after waiting for a concurrent
# commit is that commit's version (READ COMMITTED re-reads it), and the UPDATE
# re-checks its conditions against that version too, so each swap is as atomic
# as ``_ROTATE``'s; a loser's row (from ``locked``, marked false) is the row as
# it stands, which nobody can move before this transaction ends. Arrays rather
# than a VALUES list: one statement text for every batch size, which psycopg
# prepares once per connection.
_RETURNED = ", ".join("s." + c.strip() for c in SESSION_COLS.split(","))
_ROTATE_MANY = (
    f"WITH locked AS MATERIALIZED (SELECT b.counter AS expected, b.idle, b.key, {_RETURNED} "
    "FROM unnest(%(ids)s::text[], %(counters)s::bigint[], %(idles)s::float8[], %(keys)s::text[]) "
    "AS b(id, counter, idle, key) JOIN sessions s ON s.id = b.id ORDER BY s.id FOR UPDATE OF s), "
    "swapped AS (UPDATE sessions s SET counter = s.counter + 1, rotated_at = %(now)s, last_used_at = %(now)s, "
    "idle_expires_at = least(l.idle, s.expires_at), rotation_key = l.key FROM locked l "
    "WHERE s.id = l.id AND s.counter = l.expected AND s.revoked_at IS NULL "
    "AND s.idle_expires_at > %(now)s AND s.expires_at > %(now)s "
    f"RETURNING {_RETURNED}) "
    "SELECT true, * FROM swapped "
    f"UNION ALL SELECT false, {SESSION_COLS} FROM locked WHERE id NOT IN (SELECT id FROM swapped)"
)
_NOTHING = RotateResult(False, None)

# Set for the batch's transaction only (``set_config(…, true)`` is ``SET
# LOCAL``). The cached generic plan of ``_ROTATE_MANY`` rests on estimates: on
# a table never analysed, the planner guessed one row for the UPDATE's filter
# and joined it to the batch by scanning the table once per batch row (9.7 ms
# for 13 rows among 1,024; a bitmap scan on ``id = ANY(ids)`` instead cost
# ~17 µs of PostgreSQL's CPU per row, five times a key lookup). With these
# off, each row is found by key, whatever the statistics say.
_BY_KEY = (
    "SELECT set_config('enable_seqscan', 'off', true), set_config('enable_hashjoin', 'off', true), "
    "set_config('enable_mergejoin', 'off', true), set_config('enable_bitmapscan', 'off', true)"
)


def _rotate_args(
    session_id: str, counter: int, now: float, idle_expires_at: float, key_hash: str = ""
) -> tuple[Any, ...]:
    return _clean((now, now, idle_expires_at, key_hash, session_id, counter, now, now))


class PostgresStore:
    """:class:`~silentauth.core.ports.Store` on PostgreSQL, shared by many instances.

    ``timeout`` bounds how long a call waits for a pooled connection (and a new
    connection for its handshake) before the store reports itself unavailable.
    """

    def __init__(self, url: str, *, min_size: int = 2, max_size: int = 10, timeout: float = 2.0) -> None:
        # libpq understands only the postgresql:// spelling.
        self.url = "postgresql://" + url.partition("://")[2]
        self._timeout = timeout
        self._sizes = (min_size, max_size)
        self._pool = self._new_pool()
        self._opened = False
        self._version = 0

    def _new_pool(self) -> psycopg_pool.AsyncConnectionPool[Conn]:
        return psycopg_pool.AsyncConnectionPool(
            self.url,
            min_size=self._sizes[0],
            max_size=self._sizes[1],
            timeout=self._timeout,
            kwargs={"autocommit": True, "connect_timeout": max(1, int(self._timeout))},
            open=False,
            # psycopg_pool backs off reconnects exponentially without a cap, so
            # after a long outage it would wait minutes. Giving a background
            # attempt up after 3 s frees its slot: the next call then connects
            # at once, and service resumes as soon as the server is back.
            reconnect_timeout=3.0,
            name="silentauth",
        )

    # -- lifecycle -----------------------------------------------------------

    async def open(self) -> None:
        if self._opened:
            return
        try:
            # One direct connection first: it fails fast when nobody listens
            # (the pool would keep retrying until its timeout) and migrates.
            async with await psycopg.AsyncConnection.connect(
                self.url, autocommit=True, connect_timeout=max(1, int(self._timeout))
            ) as conn:
                self._version = await migrate(conn)
            await self._pool.open(wait=True, timeout=max(self._timeout, 5.0))
        except _CONNECTION_ERRORS as exc:
            await self._pool.close()
            self._pool = self._new_pool()  # a closed pool cannot reopen
            raise StoreUnavailable(f"cannot reach PostgreSQL: {_reason(exc)}") from exc
        self._opened = True

    async def close(self) -> None:
        if self._opened:
            self._opened = False
            await self._pool.close()
            self._pool = self._new_pool()

    @property
    def schema_version(self) -> int:
        """The schema version found or reached by :meth:`open`."""
        return self._version

    async def _run(self, job: Callable[[Conn], Awaitable[T]]) -> T:
        """Run ``job`` on a pooled connection; retry once if that connection was dead."""
        if not self._opened:
            raise StoreUnavailable("store is not open")
        for attempt in (1, 2):
            conn: Conn | None = None
            try:
                async with self._pool.connection() as conn:
                    return await job(conn)
            except psycopg_pool.PoolTimeout as exc:
                raise StoreUnavailable("PostgreSQL: no connection available") from exc
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                # A connection that broke mid-call is discarded by the pool. If
                # the server restarted, its idle siblings are dead too: weed
                # them out, then retry once on a fresh connection.
                broken = conn is not None and conn.closed
                if attempt == 2 or not broken:
                    raise StoreUnavailable(f"PostgreSQL: {type(exc).__name__}") from exc
                await self._pool.check()
        raise AssertionError("unreachable")  # pragma: no cover

    async def _execute(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        async def job(conn: Conn) -> list[tuple[Any, ...]]:
            cur = await conn.execute(sql, _clean(args))
            return await cur.fetchall() if cur.description else []

        return await self._run(job)

    async def _rowcount(self, sql: str, args: Sequence[Any] = ()) -> int:
        async def job(conn: Conn) -> int:
            return (await conn.execute(sql, _clean(args))).rowcount

        return await self._run(job)

    # -- users ---------------------------------------------------------------

    async def add_user(self, user: User) -> None:
        rows = await self._execute(
            "INSERT INTO users (id, username, password_hash, created_at) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT DO NOTHING RETURNING id",
            (user.id, user.username, user.password_hash, user.created_at),
        )
        if rows:
            return
        # Either the name is taken, or our own insert committed before a retry.
        existing = await self._execute("SELECT id FROM users WHERE username = %s", (user.username,))
        if not existing or existing[0][0] != user.id:
            raise AlreadyExists(f"user {user.username!r} exists")

    async def get_user(self, username: str) -> User | None:
        rows = await self._execute(
            "SELECT id, username, password_hash, created_at FROM users WHERE username = %s",
            (username,),
        )
        return User(*rows[0]) if rows else None

    async def list_users(self) -> list[User]:
        rows = await self._execute(
            "SELECT id, username, password_hash, created_at FROM users ORDER BY username"
        )
        return [User(*r) for r in rows]

    async def remove_user(self, username: str) -> bool:
        return await self._rowcount("DELETE FROM users WHERE username = %s", (username,)) > 0

    async def set_password(self, username: str, password_hash: str) -> bool:
        sql = "UPDATE users SET password_hash = %s WHERE username = %s"
        return await self._rowcount(sql, (password_hash, username)) > 0

    # -- clients -------------------------------------------------------------

    async def add_client(self, client: ClientRecord) -> None:
        rows = await self._execute(
            "INSERT INTO clients (client_id, secret_hash, name, created_at) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT DO NOTHING RETURNING client_id",
            (client.client_id, client.secret_hash, client.name, client.created_at),
        )
        # Nothing inserted: the id is taken, unless our own insert committed before a retry.
        if not rows and await self.get_client(client.client_id) != client:
            raise AlreadyExists(f"client {client.client_id!r} exists")

    async def get_client(self, client_id: str) -> ClientRecord | None:
        rows = await self._execute(
            "SELECT client_id, secret_hash, name, created_at FROM clients WHERE client_id = %s",
            (client_id,),
        )
        return ClientRecord(*rows[0]) if rows else None

    async def list_clients(self) -> list[ClientRecord]:
        rows = await self._execute(
            "SELECT client_id, secret_hash, name, created_at FROM clients ORDER BY client_id"
        )
        return [ClientRecord(*r) for r in rows]

    async def remove_client(self, client_id: str) -> bool:
        return await self._rowcount("DELETE FROM clients WHERE client_id = %s", (client_id,)) > 0

    # -- keys ----------------------------------------------------------------

    async def add_key(self, key: StoredKey) -> None:
        await self._execute(
            "INSERT INTO signing_keys (kid, alg, private_blob, public_jwk, created_at, not_after) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (kid) DO NOTHING",
            (key.kid, key.alg, key.private_blob, key.public_jwk, key.created_at, key.not_after),
        )

    async def list_keys(self) -> list[StoredKey]:
        rows = await self._execute(
            "SELECT kid, alg, private_blob, public_jwk, created_at, not_after "
            "FROM signing_keys ORDER BY created_at"
        )
        return [StoredKey(r[0], r[1], bytes(r[2]), r[3], r[4], r[5]) for r in rows]

    # -- sessions ------------------------------------------------------------

    async def create_session(self, session: SessionRecord, limit: int = 0) -> list[str]:
        cols = [c.strip() for c in SESSION_COLS.split(",")]
        # Session ids are 128 random bits: a conflict is our own retried insert.
        insert = (
            f"INSERT INTO sessions ({SESSION_COLS}) VALUES ({', '.join(['%s'] * len(cols))}) "
            "ON CONFLICT (id) DO NOTHING"
        )
        values = _clean(tuple(getattr(session, c) for c in cols))
        if limit <= 0:
            await self._execute(insert, values)
            return []
        now = session.created_at

        async def job(conn: Conn) -> list[str]:
            async with conn.transaction():
                # A row lock cannot serialize a user's first logins (there is
                # no row yet): a lock on the user's id does, on every instance.
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                    _clean((f"silentauth-user-sessions:{session.user_id}",)),
                )
                cur = await conn.execute(
                    "SELECT id FROM sessions WHERE user_id = %s AND revoked_at IS NULL "
                    'AND idle_expires_at > %s AND expires_at > %s ORDER BY created_at, id COLLATE "C"',
                    _clean((session.user_id, now, now)),
                )
                live = [str(r[0]) for r in await cur.fetchall()]
                ended: list[str] = []
                oldest = live[: max(0, len(live) - (limit - 1))]
                if oldest:
                    # Then the feed's lock, as every revocation takes it (always in this order).
                    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (REVOCATION_LOCK,))
                    cur = await conn.execute(
                        "WITH r AS (UPDATE sessions SET revoked_at = %s, revoked_reason = 'policy' "
                        "WHERE id = ANY(%s) AND revoked_at IS NULL RETURNING id) "
                        "INSERT INTO revocations (session_id, at) SELECT id, %s FROM r RETURNING session_id",
                        (now, oldest, now),
                    )
                    ended = [str(r[0]) for r in await cur.fetchall()]
                await conn.execute(insert, values)
                return ended

        return await self._run(job)

    async def get_session(self, session_id: str) -> SessionRecord | None:
        rows = await self._execute(
            f"SELECT {SESSION_COLS} FROM sessions WHERE id = %s", (session_id,)
        )
        return _session(rows[0]) if rows else None

    async def rotate(
        self, session_id: str, counter: int, now: float, idle_expires_at: float, key_hash: str = ""
    ) -> RotateResult:
        async def job(conn: Conn) -> RotateResult:
            cur = await conn.execute(_ROTATE, _rotate_args(session_id, counter, now, idle_expires_at, key_hash))
            row = await cur.fetchone()
            if row is not None:
                return RotateResult(True, _session(row))
            cur = await conn.execute(_CURRENT, _clean((session_id,)))
            current = await cur.fetchone()
            return RotateResult(False, _session(current) if current else None)

        return await self._run(job)

    async def rotate_many(self, requests: Sequence[RotateRequest], now: float) -> list[RotateResult]:
        if len(requests) == 1:
            return await rotate_each(self, requests, now)
        # The first request of each session swaps in one statement (_ROTATE_MANY).
        # A session's later requests in the batch (racing refreshes, a late
        # token's double swap) run after it one by one, in order, so each sees
        # the ones before; their rows are already locked by then.
        first: dict[str, int] = {}
        later: list[int] = []
        for i, r in enumerate(requests):
            sid = r.session_id.replace("\x00", "\ufffd")
            if sid in first:
                later.append(i)
            else:
                first[sid] = i
        firsts = [requests[i] for i in first.values()]
        args = {
            "ids": list(first),
            "counters": [r.counter for r in firsts],
            "idles": [r.idle_expires_at for r in firsts],
            "keys": [r.key_hash.replace("\x00", "\ufffd") for r in firsts],
            "now": now,
        }

        async def job(conn: Conn) -> list[RotateResult]:
            # BEGIN, the plan settings, the batch's statement, each later swap
            # and a read of its row, COMMIT: pipelined, one round trip, one commit.
            follow: list[tuple[int, Any, Any]] = []
            async with conn.pipeline():
                await conn.execute("BEGIN")
                await conn.execute(_BY_KEY)
                together = await conn.execute(_ROTATE_MANY, args)
                for i in later:
                    r = requests[i]
                    swap = await conn.execute(
                        _ROTATE, _rotate_args(r.session_id, r.counter, now, r.idle_expires_at, r.key_hash)
                    )
                    follow.append((i, swap, await conn.execute(_CURRENT, _clean((r.session_id,)))))
                await conn.execute("COMMIT")
            rows = await together.fetchall()
            found = {row[1]: row for row in rows}
            results: list[RotateResult] = [_NOTHING] * len(requests)
            for sid, i in first.items():
                row = found.get(sid)
                results[i] = _NOTHING if row is None else RotateResult(bool(row[0]), _session(row[1:]))
            for i, swap, read in follow:
                row = await swap.fetchone()
                if row is not None:
                    results[i] = RotateResult(True, _session(row))
                else:
                    current = await read.fetchone()
                    results[i] = RotateResult(False, _session(current) if current else None)
            return results

        return await self._run(job)

    async def revoke_session(self, session_id: str, reason: str, now: float) -> bool:
        return bool(
            await self._revoke(
                "UPDATE sessions SET revoked_at = %s, revoked_reason = %s "
                "WHERE id = %s AND revoked_at IS NULL RETURNING id",
                (now, reason, session_id),
                now,
            )
        )

    async def revoke_user_sessions(self, user_id: str, reason: str, now: float) -> list[str]:
        return await self._revoke(
            "UPDATE sessions SET revoked_at = %s, revoked_reason = %s "
            "WHERE user_id = %s AND revoked_at IS NULL RETURNING id",
            (now, reason, user_id),
            now,
        )

    async def _revoke(self, update: str, args: Sequence[Any], now: float) -> list[str]:
        """Mark sessions revoked and append them to the feed, in one transaction."""

        async def job(conn: Conn) -> list[str]:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (REVOCATION_LOCK,))
                cur = await conn.execute(
                    f"WITH r AS ({update}) "
                    "INSERT INTO revocations (session_id, at) SELECT id, %s FROM r "
                    "RETURNING session_id",
                    _clean((*args, now)),
                )
                return [str(r[0]) for r in await cur.fetchall()]

        return await self._run(job)

    async def list_sessions(self, user_id: str) -> list[SessionRecord]:
        rows = await self._execute(
            f"SELECT {SESSION_COLS} FROM sessions WHERE user_id = %s ORDER BY created_at",
            (user_id,),
        )
        return [_session(r) for r in rows]

    async def revocations_since(self, cursor: int) -> tuple[list[str], int]:
        rows = await self._execute(
            "SELECT seq, session_id FROM revocations WHERE seq > %s ORDER BY seq", (cursor,)
        )
        if not rows:
            return [], cursor
        return [str(r[1]) for r in rows], int(rows[-1][0])

    async def purge(self, now: float, keep_revocations: float) -> int:
        horizon = now - keep_revocations

        async def job(conn: Conn) -> int:
            n = (
                await conn.execute(
                    "DELETE FROM sessions WHERE (revoked_at IS NOT NULL AND revoked_at < %s) "
                    "OR expires_at < %s OR idle_expires_at < %s",
                    (horizon, horizon, horizon),
                )
            ).rowcount
            await conn.execute("DELETE FROM revocations WHERE at < %s", (horizon,))
            await conn.execute("DELETE FROM rate_limits WHERE expires_at < %s", (now,))
            return n

        return await self._run(job)

    # -- rate limits -----------------------------------------------------------

    async def hit(self, key: str, window: int, now: float) -> int:
        slot = int(now // window)
        rows = await self._execute(
            "INSERT INTO rate_limits (key, slot, count, expires_at) VALUES (%s, %s, 1, %s) "
            "ON CONFLICT (key) DO UPDATE SET "
            "count = CASE WHEN rate_limits.slot = EXCLUDED.slot THEN rate_limits.count + 1 ELSE 1 END, "
            "slot = EXCLUDED.slot, expires_at = EXCLUDED.expires_at "
            "RETURNING count",
            (key, slot, (slot + 1) * window),
        )
        return int(rows[0][0])

    async def peek(self, key: str, window: int, now: float) -> int:
        rows = await self._execute(
            "SELECT count FROM rate_limits WHERE key = %s AND slot = %s", (key, int(now // window))
        )
        return int(rows[0][0]) if rows else 0

