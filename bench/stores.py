"""Refresh throughput per store, with one and with two server processes.

``run()`` starts throwaway PostgreSQL and Redis servers (as the tests do), then
for each store and each process count: seeds one user, logs in a pool of
sessions, and drives ``grant_type=refresh_token`` over loopback keep-alive
connections (raw HTTP/1.1, as ``bench.loadgen`` does) for a fixed time. Each request takes a session's current refresh token from the
pool and puts the successor back, so no two requests race on one token and
every answer is a real rotation. Rate limits stay at their defaults (refresh
limits count in each process's memory, so they add no store round trip); 3,000
sessions keep each one under its 60 refreshes a minute at these rates.

The load generator shares the machine with the servers and the database;
compare stores and process counts with each other, not with other hardware.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/stores.py` as well as `python -m bench`
    sys.path.insert(0, str(ROOT))

from silentauth.core.passwords import Passwords  # noqa: E402
from silentauth.core.ports import User  # noqa: E402
from silentauth.stores.base import open_store  # noqa: E402
from tests.stores.servers import (  # noqa: E402
    PostgresServer,
    RedisServer,
    ServiceProcess,
    find_binary,
    service_env,
)

STORES = ("sqlite", "postgres", "redis")


def _seed(url: str) -> None:
    # A cheap Argon2 hash: the bench measures refresh, not password hashing.
    cheap = Passwords(time_cost=1, memory_cost=1024, parallelism=1)

    async def go() -> None:
        store = open_store(url)
        await store.open()
        try:
            await store.add_user(User(str(uuid.uuid4()), "bench", cheap.hash("bench"), time.time()))
        finally:
            await store.close()

    asyncio.run(go())


class _Conn:
    """One keep-alive HTTP/1.1 connection, raw: an httpx client tops out near
    the rate of the servers measured here and would flatten the differences."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> _Conn:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        body = urlencode(form).encode()
        self.writer.write(
            b"POST /auth/token HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        payload = await self.reader.readexactly(length)
        return int(head[9:12]), json.loads(payload) if payload else {}

    def close(self) -> None:
        self.writer.close()


LOGIN = {"grant_type": "password", "username": "bench", "password": "bench"}


async def _drive(ports: list[int], sessions: int, seconds: float, concurrency: int) -> dict[str, Any]:
    # Connections are spread over the processes like a balancer would; the
    # tokens are not: a token rotated on one process is next used on another.
    conns = [await _Conn.open(ports[k % len(ports)]) for k in range(concurrency)]
    try:
        tokens: list[str] = []

        async def login(c: _Conn, n: int) -> None:
            for _ in range(n):
                status, body = await c.token(LOGIN)
                if status != 200:
                    raise RuntimeError(f"login failed: {status} {body}")
                tokens.append(str(body["refresh_token"]))

        per = -(-sessions // concurrency)
        await asyncio.gather(*(login(c, per) for c in conns))
        random.Random(1).shuffle(tokens)
        pool: asyncio.Queue[str] = asyncio.Queue()
        for t in tokens:
            pool.put_nowait(t)
        latencies: list[float] = []
        errors: dict[str, int] = {}
        warmup_end = time.monotonic() + min(1.0, seconds / 5)
        end = warmup_end + seconds

        async def worker(c: _Conn) -> None:
            while time.monotonic() < end:
                token = pool.get_nowait()
                t0 = time.monotonic()
                status, body = await c.token({"grant_type": "refresh_token", "refresh_token": token})
                t1 = time.monotonic()
                if status == 200:
                    pool.put_nowait(str(body["refresh_token"]))
                    if t0 >= warmup_end and t1 <= end:
                        latencies.append(t1 - t0)
                else:
                    errors[str(status)] = errors.get(str(status), 0) + 1
                    pool.put_nowait(token)

        await asyncio.gather(*(worker(c) for c in conns))
    finally:
        for c in conns:
            c.close()
    latencies.sort()
    n = len(latencies)
    return {
        "refreshes_per_s": round(n / seconds, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2) if n else None,
        "p99_ms": round(latencies[min(n - 1, int(n * 0.99))] * 1000, 2) if n else None,
        "requests": n,
        "errors": errors,
    }


def _config(
    url: str, processes: int, sessions: int, seconds: float, concurrency: int, rate_limits: bool
) -> dict[str, Any]:
    _seed(url)
    env = service_env(url, log_level="error")
    if rate_limits:
        env.pop("SILENTAUTH_RATE_LIMIT_REFRESH")  # the shipped default: 60/minute per session
    servers = [ServiceProcess(env) for _ in range(processes)]
    try:
        for s in servers:
            s.start()
        for s in servers:
            s.wait_ready()
        return asyncio.run(_drive([s.port for s in servers], sessions, seconds, concurrency))
    finally:
        for s in servers:
            s.stop()


def run(
    seconds: float = 8.0,
    concurrency: int = 32,
    sessions: int = 3000,
    stores: tuple[str, ...] = STORES,
    processes: tuple[int, ...] = (1, 2),
    rate_limits: bool = True,
) -> dict[str, Any]:
    """Measure refreshes/s, p50 and p99 for each store and process count.

    Returns ``{store: {"1": {...}, "2": {...}} | {"skipped": why}, "setup": {...}}``.
    About ``seconds`` + 3 s per configuration. ``rate_limits=False`` turns the
    refresh rate limit off, to show what its shared counters cost.
    """
    results: dict[str, Any] = {
        "setup": {
            "seconds": seconds, "concurrency": concurrency, "sessions": sessions,
            "cpus": os.cpu_count(), "client": "raw HTTP/1.1 keep-alive, same machine, loopback",
            "rate_limit_refresh": "60/minute (default)" if rate_limits else "off",
        }
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="silentauth-bench-") as tmp:
        for kind in stores:
            try:
                make_url, cleanup = _store(kind, Path(tmp))
            except RuntimeError as exc:
                results[kind] = {"skipped": str(exc)}
                continue
            try:
                results[kind] = {
                    str(p): _config(make_url(f"b{p}"), p, sessions, seconds, concurrency, rate_limits) for p in processes
                }
            finally:
                cleanup()
    return results


def _store(kind: str, tmp: Path) -> tuple[Callable[[str], str], Callable[[], None]]:
    """(fresh-store URL maker, cleanup) for ``kind``; RuntimeError if unavailable."""
    if kind == "sqlite":
        return (lambda name: f"sqlite:///{tmp / name}.db"), (lambda: None)
    if kind == "postgres":
        if not (find_binary("initdb") and find_binary("postgres")):
            raise RuntimeError("PostgreSQL binaries not installed")
        pg = PostgresServer()
        pg.init()
        pg.start()
        return pg.create_database, pg.stop
    if not find_binary("redis-server"):
        raise RuntimeError("redis-server not installed")
    rs = RedisServer()
    rs.start()
    dbs = iter(range(16))
    return (lambda name: rs.url(next(dbs))), rs.stop


if __name__ == "__main__":  # python bench/stores.py: the same dict, as JSON
    print(json.dumps(run(), indent=2))
