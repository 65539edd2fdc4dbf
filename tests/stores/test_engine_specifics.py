"""What only one engine promises: Redis TTLs and cursor reset, PostgreSQL migrations,
SQLite's all-or-nothing batch of rotations."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest
import redis

from silentauth.core.ports import RotateRequest, SessionRecord, User
from silentauth.errors import ConfigError, StoreUnavailable
from silentauth.stores.base import SESSION_FIELDS, rotate_each
from silentauth.stores.postgres import _BY_KEY, _ROTATE_MANY, PostgresStore
from silentauth.stores.postgres_schema import MIGRATIONS, SESSION_COLS
from silentauth.stores.redis import RedisStore
from silentauth.stores.sqlite import (
    _FIELDS,
    _SESSION_COLS,
    SQLiteStore,
    _rotate_together_sql,
)
from tests.stores.servers import PostgresServer, RedisClusterServers, RedisServer
from tests.stores.test_conformance import make_session

pytestmark = pytest.mark.anyio

RETENTION = 1000.0


@pytest.fixture
async def redis_store(redis_server: RedisServer) -> AsyncIterator[RedisStore]:
    with redis.Redis(port=redis_server.port, db=2) as client:
        client.flushdb()
    store = RedisStore(redis_server.url(db=2), retention=RETENTION)
    await store.open()
    yield store
    await store.close()


def ttls(server: RedisServer) -> dict[str, int]:
    with redis.Redis(port=server.port, db=2, decode_responses=True) as client:
        return {k: int(client.ttl(k)) for k in client.keys("*")}


async def test_redis_keys_that_hold_sessions_or_counters_expire_by_themselves(
    redis_store: RedisStore, redis_server: RedisServer
) -> None:
    # Real time here: Redis expires keys on its own clock.
    now = time.time()
    await redis_store.add_user(User("u1", "alice", "h", now))
    live = make_session("u1", now=now, idle=100.0, max_age=500.0)
    ended = make_session("u1", now=now, idle=100.0, max_age=500.0)
    for s in (live, ended):
        await redis_store.create_session(s)
    await redis_store.rotate(live.id, 0, now + 1, now + 201)  # idle deadline moves to +201
    await redis_store.revoke_session(ended.id, "logout", now + 2)
    await redis_store.hit("login:alice", 60, now)
    t = ttls(redis_server)
    L = redis_store.layout
    # Dead data evaporates `retention` after its end; live data when it could end.
    assert 201 + RETENTION - 5 <= t[L.session(live.id)] <= 201 + RETENTION
    assert RETENTION - 5 <= t[L.session(ended.id)] <= RETENTION
    assert 500 + RETENTION - 5 <= t[L.user_sessions("u1")] <= 500 + RETENTION
    assert 0 < t[next(k for k in t if k.startswith(f"{L.prefix}rl:{{rl:login:alice}}:"))] <= 60
    # Only the documented bookkeeping keys live on (purge trims them).
    permanent = {k for k, ttl in t.items() if ttl == -1}
    assert permanent == {
        L.user("alice"), L.users, *L.feed,
        *{L.session_ends(L.group(s.id)) for s in (live, ended)},
    }  # fmt: skip


async def test_redis_cursor_restarts_when_the_server_comes_back_empty(
    redis_store: RedisStore, redis_server: RedisServer
) -> None:
    sessions = [make_session() for _ in range(3)]
    for s in sessions:
        await redis_store.create_session(s)
        await redis_store.revoke_session(s.id, "logout", s.created_at)
    _, cursor = await redis_store.revocations_since(0)
    assert cursor == 3
    with redis.Redis(port=redis_server.port, db=2) as client:
        client.flushdb()  # what a restart without persistence leaves
    fresh = make_session()
    await redis_store.create_session(fresh)
    await redis_store.revoke_session(fresh.id, "logout", fresh.created_at)
    # The counter restarted at 1, below the reader's cursor: not missed.
    assert await redis_store.revocations_since(cursor) == ([fresh.id], 1)


async def test_postgres_instances_starting_together_migrate_once(postgres_server: PostgresServer) -> None:
    url = postgres_server.create_database("racing_migrations")
    stores = [PostgresStore(url) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        assert {s.schema_version for s in stores} == {len(MIGRATIONS)}
        rows = await stores[0]._execute("SELECT version FROM schema_version ORDER BY version")
        assert [r[0] for r in rows] == list(range(1, len(MIGRATIONS) + 1))
    finally:
        for s in stores:
            await s.close()


async def test_redis_out_of_memory_reads_as_unavailable_not_as_an_error(
    redis_store: RedisStore, redis_server: RedisServer
) -> None:
    from silentauth.errors import StoreUnavailable

    s = make_session()
    await redis_store.create_session(s)
    with redis.Redis(port=redis_server.port) as admin:
        admin.config_set("maxmemory", "1")
        try:
            with pytest.raises(StoreUnavailable):
                await redis_store.rotate(s.id, 0, s.created_at + 1, s.created_at + 100)
            with pytest.raises(StoreUnavailable):
                await redis_store.create_session(make_session())
        finally:
            admin.config_set("maxmemory", "0")
    assert (await redis_store.rotate(s.id, 0, s.created_at + 1, s.created_at + 100)).swapped


async def test_sqlite_rotate_many_is_one_transaction_all_or_nothing(tmp_path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path / 'batch.db'}")
    await store.open()
    try:
        sessions = [make_session() for _ in range(3)]
        for s in sessions:
            await store.create_session(s)
        # The third swap of the batch fails inside the transaction.
        with sqlite3.connect(store.path) as db:
            db.execute(
                "CREATE TRIGGER poison BEFORE UPDATE ON sessions "
                f"WHEN NEW.id = '{sessions[2].id}' BEGIN SELECT RAISE(ABORT, 'poisoned'); END"
            )
        now = sessions[0].created_at + 1
        batch = [RotateRequest(s.id, 0, now + 3600) for s in sessions]
        with pytest.raises(sqlite3.Error):
            await store.rotate_many(batch, now)
        # The first two swaps were rolled back with it: no client may hold a
        # token whose rotation the database does not have.
        for s in sessions:
            row = await store.get_session(s.id)
            assert row is not None and row.counter == 0
        # The store is usable afterwards (no transaction left open).
        results = await store.rotate_many(batch[:2], now)
        assert [r.swapped for r in results] == [True, True]
    finally:
        await store.close()


async def test_sqlite_rows_read_back_are_records_like_those_the_constructor_builds(tmp_path: Path) -> None:
    # The store fills records in without SessionRecord.__init__ (a frozen
    # dataclass's is slow): what it returns must be the same value in every way.
    store = SQLiteStore(f"sqlite:///{tmp_path / 'rows.db'}")
    await store.open()
    try:
        made = make_session(resources="https://a.example", claims='{"t":1}')
        await store.create_session(made)
        read = await store.get_session(made.id)
        rotated = await store.rotate_many([RotateRequest(made.id, 0, made.created_at + 60, "kh")], made.created_at + 1)
        assert type(read) is SessionRecord and read == made and hash(read) == hash(made) and repr(read) == repr(made)
        swapped = rotated[0].session
        assert swapped == dataclasses.replace(
            made, counter=1, last_used_at=made.created_at + 1, rotated_at=made.created_at + 1,
            idle_expires_at=made.created_at + 60, rotation_key="kh",
        )
        with pytest.raises(dataclasses.FrozenInstanceError):
            read.counter = 5  # type: ignore[misc]
        assert vars(read) == vars(made)
    finally:
        await store.close()


@pytest.mark.parametrize("analyze", [False, True])
def test_sqlite_batched_swap_finds_each_session_by_its_key(tmp_path: Path, analyze: bool) -> None:
    # A batch swaps in one UPDATE … FROM its rows: it must look each session up
    # by primary key, never scan the table (with or without the planner's statistics).
    store = SQLiteStore(f"sqlite:///{tmp_path / 'plan.db'}")
    store.open_sync()
    db = store._conn()
    rows = [make_session() for _ in range(2000)]
    db.executemany(
        f"INSERT INTO sessions ({_SESSION_COLS}) VALUES ({', '.join('?' * len(_FIELDS))})",
        [tuple(getattr(s, name) for name in _FIELDS) for s in rows],
    )
    if analyze:
        db.execute("ANALYZE")
    for size in (2, 32, 128):
        plan = [r[3] for r in db.execute("EXPLAIN QUERY PLAN " + _rotate_together_sql(size), [None] * (4 * size + 4))]
        assert any(step.startswith("SEARCH sessions USING INDEX sqlite_autoindex_sessions_1 (id=?)") for step in plan), plan
        assert not any(step.startswith("SCAN sessions") for step in plan), plan
    db.close()


async def test_one_round_trip_per_swap_keeps_a_sessions_requests_in_order(redis_store: RedisStore) -> None:
    # rotate_each (Redis with wait_replicas, or after a lost script cache) sends a
    # round trip per swap over a pool of connections: one session's swaps must still
    # reach Redis in arrival order, or a late token's double swap fails its second half.
    for attempt in range(5):
        x, y = make_session(), make_session()
        await redis_store.create_session(x)
        await redis_store.create_session(y)
        now = x.created_at + 1 + attempt
        order = [(x, 0), (y, 0), (x, 1), (y, 1), (x, 2), (y, 0), (x, 3)]
        results = await rotate_each(redis_store, [RotateRequest(s.id, c, now + 60) for s, c in order], now)
        assert [r.swapped for r in results] == [True, True, True, True, True, False, True], attempt
        assert [r.session.counter if r.session else None for r in results] == [1, 1, 2, 2, 3, 2, 4], attempt


async def test_redis_rotate_many_survives_a_flushed_script_cache(
    redis_store: RedisStore, redis_server: RedisServer
) -> None:
    # A restarted Redis has forgotten the scripts: the pipelined batch falls
    # back to the one-by-one path, which loads them again.
    sessions = [make_session() for _ in range(3)]
    for s in sessions:
        await redis_store.create_session(s)
    with redis.Redis(port=redis_server.port) as client:
        client.script_flush()
    now = sessions[0].created_at + 1
    results = await redis_store.rotate_many([RotateRequest(s.id, 0, now + 100) for s in sessions], now)
    assert [r.swapped for r in results] == [True, True, True]
    again = await redis_store.rotate_many([RotateRequest(s.id, 0, now + 100) for s in sessions], now)
    assert [(r.swapped, r.session.counter if r.session else None) for r in again] == [(False, 1)] * 3


async def test_postgres_rotate_many_is_one_transaction_all_or_nothing(postgres_server: PostgresServer) -> None:
    url = postgres_server.create_database("batch_atomic")
    store = PostgresStore(url)
    await store.open()
    try:
        sessions = sorted((make_session() for _ in range(3)), key=lambda s: s.id)
        for s in sessions:
            await store.create_session(s)
        # The swap of the last session (in lock order) fails inside the batch.
        with psycopg.connect(url, autocommit=True) as db:
            db.execute(
                "CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN "
                f"IF NEW.id = '{sessions[2].id}' THEN RAISE EXCEPTION 'poisoned'; END IF; RETURN NEW; "
                "END $$ LANGUAGE plpgsql"
            )
            db.execute("CREATE TRIGGER poison BEFORE UPDATE ON sessions FOR EACH ROW EXECUTE FUNCTION poison()")
        now = sessions[0].created_at + 1
        batch = [RotateRequest(s.id, 0, now + 3600) for s in reversed(sessions)]
        with pytest.raises(psycopg.Error):
            await store.rotate_many(batch, now)
        # The other swaps were rolled back with it: one transaction per batch
        # (and one WAL flush), not one per refresh.
        for s in sessions:
            row = await store.get_session(s.id)
            assert row is not None and row.counter == 0
        # The pooled connection came back clean.
        results = await store.rotate_many(batch[1:], now)
        assert [r.swapped for r in results] == [True, True]
    finally:
        await store.close()


async def test_postgres_batches_over_the_same_sessions_in_opposite_orders_do_not_deadlock(
    postgres_server: PostgresServer,
) -> None:
    # Two instances' batches name the same sessions in opposite orders. A
    # third connection holds the middle row, so both batches are stopped
    # mid-way with some rows locked: had each locked in its own request order,
    # each would now hold a row the other needs, and PostgreSQL would abort one
    # (deadlock detected) when the middle row is let go.
    url = postgres_server.create_database("batch_lock_order")
    a, b = PostgresStore(url), PostgresStore(url)
    await a.open()
    await b.open()
    try:
        sessions = [make_session() for _ in range(9)]
        for s in sessions:
            await a.create_session(s)
        middle = sorted(s.id for s in sessions)[4]
        now = sessions[0].created_at + 1
        batch = [RotateRequest(s.id, 0, now + 3600) for s in sessions]
        async with await psycopg.AsyncConnection.connect(url) as holder:
            await holder.execute("SELECT 1 FROM sessions WHERE id = %s FOR UPDATE", (middle,))
            runs = [
                asyncio.ensure_future(a.rotate_many(batch, now)),
                asyncio.ensure_future(b.rotate_many(batch[::-1], now)),
            ]
            for _ in range(500):  # until both batches wait on a row lock
                cur = await holder.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                )
                row = await cur.fetchone()
                if row is not None and row[0] == 2:
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError("the batches never both waited on a row lock")
            await holder.commit()
            first, second = await asyncio.wait_for(asyncio.gather(*runs), timeout=20)
        # One batch swapped every session, the other saw its rows: each session once.
        assert sorted([r.swapped for r in first + second]) == [False] * 9 + [True] * 9
        assert all(x.swapped != y.swapped for x, y in zip(first, second[::-1], strict=True))
        assert {r.session.counter for r in first + second if r.session} == {1}
    finally:
        await a.close()
        await b.close()


def test_sql_stores_select_session_columns_in_the_records_field_order() -> None:
    # Rows become records by position (stores.base.session_record).
    assert _FIELDS == SESSION_FIELDS
    assert tuple(c.strip() for c in SESSION_COLS.split(",")) == SESSION_FIELDS


async def test_postgres_rows_read_back_are_records_like_those_the_constructor_builds(
    postgres_server: PostgresServer,
) -> None:
    store = PostgresStore(postgres_server.create_database("rows"))
    await store.open()
    try:
        made = make_session(resources="https://a.example", claims='{"t":1}')
        await store.create_session(made)
        read = await store.get_session(made.id)
        other = make_session()
        await store.create_session(other)
        batch = [RotateRequest(made.id, 0, made.created_at + 60, "kh"), RotateRequest(other.id, 5, made.created_at + 60)]
        swapped, lost = await store.rotate_many(batch, made.created_at + 1)
        assert type(read) is SessionRecord and read == made and hash(read) == hash(made) and repr(read) == repr(made)
        assert vars(read) == vars(made)
        assert swapped.session == dataclasses.replace(
            made, counter=1, last_used_at=made.created_at + 1, rotated_at=made.created_at + 1,
            idle_expires_at=made.created_at + 60, rotation_key="kh",
        )
        assert not lost.swapped and lost.session == other and vars(lost.session) == vars(other)
    finally:
        await store.close()


@pytest.mark.parametrize("analyze", [False, True])
async def test_postgres_batched_swap_finds_each_session_by_its_key(postgres_server: PostgresServer, analyze: bool) -> None:
    # The batch's statement must look sessions up by primary key, never scan
    # the table, with or without the planner's statistics. Checked on the
    # generic plan, the one psycopg's prepared statement runs, over a table of
    # 1,024 rows: there, left to its estimates, the planner scanned the table.
    url = postgres_server.create_database(f"batch_plan_{int(analyze)}")
    migrated = PostgresStore(url)
    await migrated.open()
    await migrated.close()
    now = 1_800_000_000.0
    with psycopg.connect(url, autocommit=True) as db:
        db.execute(
            "INSERT INTO sessions (id, user_id, username, counter, scope, client_id, auth_time, created_at, "
            "last_used_at, rotated_at, idle_expires_at, expires_at, user_agent, ip) "
            "SELECT md5(i::text), 'u' || (i %% 100), 'alice', 0, 'openid', 'native', %s, %s, %s, %s, %s, %s, 'ua', '::1' "
            "FROM generate_series(1, 1024) AS i",
            (now, now, now, now, now + 60, now + 3600),
        )
        if analyze:
            db.execute("ANALYZE sessions")
        statement = _ROTATE_MANY
        for n, name in enumerate(("ids", "counters", "idles", "keys", "now"), start=1):
            statement = statement.replace(f"%({name})s", f"${n}")
        with db.transaction():
            db.execute(_BY_KEY)
            db.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            db.execute(f"PREPARE batch(text[], bigint[], float8[], text[], float8) AS {statement}")
            for size in (2, 16, 64):
                args = (
                    [hashlib.md5(str(i).encode()).hexdigest() for i in range(1, size + 1)],
                    [0] * size, [now + 61] * size, [""] * size, now + 1,
                )
                explain = "EXPLAIN EXECUTE batch(%s, %s, %s, %s, %s)"
                plan = "\n".join(r[0] for r in psycopg.ClientCursor(db).execute(explain, args))
                # The rows to lock, and the rows to update, each found through the key.
                assert plan.count("Index Scan using sessions_pkey") == 2, plan
                assert "Seq Scan on sessions" not in plan, plan
            db.execute("DEALLOCATE batch")


# -- Redis Cluster and replica-acknowledged writes ---------------------------


async def test_redis_write_with_wait_replicas_needs_that_many_replica_acknowledgements(
    redis_cluster: RedisClusterServers, redis_server: RedisServer
) -> None:
    redis_cluster.flush()
    now = time.time()
    s = make_session(now=now)
    # Each cluster master has one replica: one acknowledgement comes, two never do.
    one = RedisStore(redis_cluster.url + "?wait_replicas=1", timeout=0.3)
    two = RedisStore(redis_cluster.url + "?wait_replicas=2", timeout=0.3)
    lone = RedisStore(redis_server.url(db=2) + "?wait_replicas=1", timeout=0.3)  # no replica at all
    for store in (one, two, lone):
        await store.open()
    try:
        await one.create_session(s)
        assert (await one.rotate(s.id, 0, now + 1, now + 100)).swapped
        with pytest.raises(StoreUnavailable):
            await two.rotate(s.id, 1, now + 2, now + 100)
        with pytest.raises(StoreUnavailable):
            await lone.add_user(User("u1", "alice", "h", now))
        # Reads wait for nobody; the write answered 503 may have happened (Redis cannot undo it).
        assert await two.get_session(s.id) is not None
    finally:
        for store in (one, two, lone):
            await store.close()


async def test_redis_cluster_keys_of_one_session_share_a_slot_and_sessions_spread_over_every_master(
    redis_cluster: RedisClusterServers,
) -> None:
    redis_cluster.flush()
    store = RedisStore(redis_cluster.url)
    await store.open()
    try:
        sessions = [make_session() for _ in range(60)]
        for s in sessions:
            await store.create_session(s)
        L = store.layout
        with redis.RedisCluster(host="127.0.0.1", port=redis_cluster.nodes[0].port) as c:
            for s in sessions:
                assert c.keyslot(L.session(s.id)) == c.keyslot(L.session_ends(L.group(s.id)))
            assert c.keyslot(L.user("alice")) == c.keyslot(L.users)
            assert len({c.keyslot(k) for k in L.feed}) == 1
            masters = {c.get_node_from_key(L.session(s.id)).port for s in sessions}
        assert len(masters) == redis_cluster.masters
    finally:
        await store.close()


@pytest.mark.parametrize(
    "url", ["redis://h/0?wait_replicas=x", "redis://h/0?wait_replicas=99", "redis+cluster://h:1,nohostport"]
)
def test_redis_urls_with_a_bad_wait_replicas_or_node_list_are_refused_at_startup(url: str) -> None:
    with pytest.raises(ConfigError):
        RedisStore(url)._connect()


def test_redis_cluster_url_may_name_several_nodes() -> None:
    store = RedisStore("redis+cluster://:pw@a:7000,b:7001,c:7002/?wait_replicas=1")
    assert (store.cluster, store.wait_replicas) == (True, 1)
    client = store._connect()
    assert {(n.host, n.port) for n in client.nodes_manager.startup_nodes.values()} >= {
        ("a", 7000), ("b", 7001), ("c", 7002)
    }


async def test_sqlite_database_from_before_session_claims_migrates(tmp_path: Path) -> None:
    from silentauth.stores import sqlite as engine

    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for version, script in enumerate(engine.MIGRATIONS[:3], start=1):
        db.executescript(script)
        db.execute("INSERT INTO schema_version VALUES (?)", (version,))
    old = make_session("u1")
    cols = "id, user_id, username, counter, scope, client_id, auth_time, created_at, last_used_at, " \
        "rotated_at, idle_expires_at, expires_at, user_agent, ip, resources"
    db.execute(f"INSERT INTO sessions ({cols}) VALUES ({', '.join('?' * 15)})",
               tuple(getattr(old, c.strip()) for c in cols.split(",")))  # fmt: skip
    db.commit()
    db.close()
    store = SQLiteStore(f"sqlite:///{path}")
    await store.open()
    try:
        assert store.schema_version == len(engine.MIGRATIONS)
        assert await store.get_session(old.id) == old and old.claims == ""
        fresh = make_session("u1", claims='{"tenant":"acme"}')
        await store.create_session(fresh)
        assert (await store.get_session(fresh.id)) == fresh
    finally:
        await store.close()


async def test_sqlite_database_of_schema_3_gains_rotation_key_and_keeps_its_sessions(tmp_path: Path) -> None:
    from silentauth.stores.sqlite import MIGRATIONS as SQLITE_MIGRATIONS
    from silentauth.stores.sqlite import SQLiteStore

    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for version, script in enumerate(SQLITE_MIGRATIONS[:3], start=1):
        for statement in filter(str.strip, script.split(";")):
            db.execute(statement)
        db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
    db.execute(
        "INSERT INTO sessions VALUES ('old-session', 'u', 'alice', 4, 'api', 'native', 1.0, 1.0, 1.0, 1.0,"
        " 4e9, 4e9, 'ua', '127.0.0.1', NULL, NULL, '')"
    )
    db.commit()
    db.close()
    store = SQLiteStore(f"sqlite:///{path}")
    await store.open()
    try:
        old = await store.get_session("old-session")
        assert old is not None and old.counter == 4 and old.rotation_key == ""
        swapped = await store.rotate("old-session", 4, 2.0, 3e9, "h")
        assert swapped.swapped and swapped.session is not None and swapped.session.rotation_key == "h"
        assert store.schema_version == len(SQLITE_MIGRATIONS)
    finally:
        await store.close()
