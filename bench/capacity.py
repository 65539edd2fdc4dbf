"""Bytes per session on each store, for the capacity model in ``docs/scaling.md``.

Inserts N sessions straight through each store's ``create_session`` (no HTTP:
this measures storage, not speed) into an empty store and reports what the
store grew by, divided by N:

- SQLite: ``page_count × page_size`` after a WAL checkpoint (the file itself,
  sessions table and its indexes).
- PostgreSQL: ``pg_total_relation_size('sessions')`` (heap, TOAST and every
  index) after ``VACUUM ANALYZE``; throwaway server as the tests start it.
- Redis: ``MEMORY USAGE`` of every ``session:*`` hash plus of the per-user
  indexes (``user-sessions`` and ``user-live``) and the ``session-ends``
  index they are listed in, also per kind of key, and the ``used_memory``
  delta of ``INFO memory`` as a cross-check.

Sessions look like production ones: a ``token_urlsafe(16)`` id, ``user_id`` a
UUID, the default scope, a browser user agent and an IPv4 address; USERS users
share them (the per-user indexes hold several sessions each). Run:
``python bench/capacity.py [N]`` (default 100,000; about a minute per store).

``python bench/capacity.py cpu [N]`` measures the other input of the model:
the database server's own CPU time per rotation (``store.rotate`` of N
sessions, 64 at a time; PostgreSQL from ``/proc`` of the postmaster and its
backends, Redis from ``INFO cpu``). The throwaway servers skip fsync, which
costs disk time rather than CPU.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.loadgen import CLOCK_TICKS, cpu_ticks, process_tree  # noqa: E402
from silentauth.core.ports import SessionRecord, Store  # noqa: E402
from silentauth.stores.base import open_store  # noqa: E402
from tests.stores.servers import PostgresServer, RedisServer  # noqa: E402

USERS = 20_000  # 5 sessions per user at N = 100k
UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
PARALLEL = 64  # concurrent inserts on the network stores


def sessions(n: int) -> list[SessionRecord]:
    """``n`` production-shaped sessions spread over USERS users."""
    users = [str(uuid.uuid4()) for _ in range(USERS)]
    now = time.time()
    return [
        SessionRecord(
            id=secrets.token_urlsafe(16), user_id=users[i % USERS], username=f"user{i % USERS}@example.com",
            counter=0, scope="openid api", client_id="web", auth_time=now, created_at=now, last_used_at=now,
            rotated_at=now, idle_expires_at=now + 14 * 86400, expires_at=now + 30 * 86400,
            user_agent=UA, ip=f"203.0.{i % 250}.{i % 200}",
        )  # fmt: skip
        for i in range(n)
    ]


async def fill(url: str, records: list[SessionRecord], measure: Callable[[Store], Awaitable[float]]) -> dict[str, Any]:
    """Open ``url``, measure, insert ``records``, measure again; bytes per session."""
    store = open_store(url)
    await store.open()
    try:
        before = await measure(store)
        t0 = time.monotonic()
        for i in range(0, len(records), PARALLEL):
            await asyncio.gather(*(store.create_session(s) for s in records[i : i + PARALLEL]))
        took = time.monotonic() - t0
        after = await measure(store)
    finally:
        await store.close()
    return {"bytes_before": before, "bytes_after": after, "bytes_per_session": round((after - before) / len(records), 1),
            "insert_s": round(took, 1)}  # fmt: skip


def sqlite_bytes(path: Path) -> float:
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
    return float(pages * size)


async def run_sqlite(records: list[SessionRecord]) -> dict[str, Any]:
    path = Path(tempfile.mkdtemp(prefix="silentauth-cap-")) / "cap.db"

    async def measure(_: Store) -> float:
        return await asyncio.to_thread(sqlite_bytes, path)

    return await fill(f"sqlite:///{path}", records, measure)


async def run_postgres(records: list[SessionRecord]) -> dict[str, Any]:
    import psycopg

    server = PostgresServer()
    server.init()
    server.start()
    try:
        url = server.create_database("capacity")

        def size() -> float:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE sessions")
                row = conn.execute("SELECT pg_total_relation_size('sessions')").fetchone()
                assert row is not None
                return float(row[0])

        async def measure(_: Store) -> float:
            return await asyncio.to_thread(size)

        result = await fill(url, records, measure)
        with psycopg.connect(url) as conn:
            result["indexes"] = [r[0] for r in conn.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'sessions'")]
        return result
    finally:
        server.stop()


async def run_redis(records: list[SessionRecord]) -> dict[str, Any]:
    import redis

    server = RedisServer()
    server.start()
    try:
        url = server.url(0)
        client = redis.Redis(port=server.port)

        by_kind: dict[str, int] = {}

        def memory_usage() -> float:
            # Every key the sessions live in: session hashes and their indexes
            # (the users table is empty here; keys and feed are per deployment).
            by_kind.clear()
            for key in client.scan_iter(count=1000):
                kind = _key_kind(key.decode())
                by_kind[kind] = by_kind.get(kind, 0) + int(client.memory_usage(key, samples=0) or 0)
            return float(sum(by_kind.values()))

        async def measure(_: Store) -> float:
            return await asyncio.to_thread(memory_usage)

        used0 = int(client.info("memory")["used_memory"])
        result = await fill(url, records, measure)
        used1 = int(client.info("memory")["used_memory"])
        result["used_memory_per_session"] = round((used1 - used0) / len(records), 1)
        # The store was empty before: what each kind of key holds per session.
        result["bytes_per_session_by_key"] = {k: round(v / len(records), 1) for k, v in sorted(by_kind.items())}
        client.close()
        return result
    finally:
        server.stop()


def _key_kind(key: str) -> str:
    """``silentauth:user-live:{u:…}`` -> ``user-live``: the key's kind in the store's layout."""
    return key.split(":", 2)[1] if key.count(":") >= 1 else key


def postgres_cpu(postmaster: int) -> float:
    """CPU seconds of the postmaster and its live children (the pool's backends live on)."""
    return cpu_ticks(process_tree(postmaster)) / CLOCK_TICKS


async def rotations_cpu(url: str, records: list[SessionRecord], cpu: Callable[[], float]) -> dict[str, Any]:
    """Server CPU seconds per rotation: insert ``records``, rotate each once, read ``cpu`` around it."""
    store = open_store(url)
    await store.open()
    try:
        for i in range(0, len(records), PARALLEL):
            await asyncio.gather(*(store.create_session(s) for s in records[i : i + PARALLEL]))
        now = time.time()
        c0, t0 = cpu(), time.monotonic()
        for i in range(0, len(records), PARALLEL):
            await asyncio.gather(*(store.rotate(s.id, 0, now, now + 3600) for s in records[i : i + PARALLEL]))
        c1, t1 = cpu(), time.monotonic()
    finally:
        await store.close()
    return {"rotations": len(records), "server_cpu_us_per_rotation": round((c1 - c0) / len(records) * 1e6, 1),
            "wall_s": round(t1 - t0, 1)}  # fmt: skip


async def cpu_postgres(records: list[SessionRecord]) -> dict[str, Any]:
    server = PostgresServer()
    server.init()
    server.start()
    try:
        assert server.proc is not None
        pid = server.proc.pid
        return await rotations_cpu(server.create_database("cpu"), records, lambda: postgres_cpu(pid))
    finally:
        server.stop()


async def cpu_redis(records: list[SessionRecord]) -> dict[str, Any]:
    import redis

    server = RedisServer()
    server.start()
    client = redis.Redis(port=server.port)

    def cpu() -> float:
        info = client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    try:
        return await rotations_cpu(server.url(0), records, cpu)
    finally:
        client.close()
        server.stop()


def main() -> None:
    """``capacity.py [N]``: bytes per session; ``capacity.py cpu [N]``: server CPU per rotation."""
    args = sys.argv[1:]
    if args and args[0] == "cpu":
        records = sessions(int(args[1]) if len(args) > 1 else 20_000)
        cpu_out = {name: asyncio.run(run(records)) for name, run in (("postgres", cpu_postgres), ("redis", cpu_redis))}
        print(json.dumps(cpu_out, indent=2))
        return
    n = int(args[0]) if args else 100_000
    records = sessions(n)
    out: dict[str, Any] = {"sessions": n, "users": USERS, "user_agent_bytes": len(UA)}
    for name, run in (("sqlite", run_sqlite), ("postgres", run_postgres), ("redis", run_redis)):
        out[name] = asyncio.run(run(records))
        print(name, json.dumps(out[name]), file=sys.stderr, flush=True)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
