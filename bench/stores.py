"""Refresh throughput per store, with one and with two server processes.

``run()`` starts throwaway PostgreSQL and Redis servers (as the tests do), then
for each store and each process count: seeds one user, logs in a pool of
sessions, and drives ``grant_type=refresh_token`` over loopback with httpx for
a fixed time. Each request takes a session's current refresh token from the
pool and puts the successor back, so no two requests race on one token and
every answer is a real rotation. Rate limits stay at their defaults (shared
counters on PostgreSQL and Redis, so their round trips are counted too).

The load generator shares the machine with the servers and the database;
compare stores and process counts with each other, not with other hardware.
"""

from __future__ import annotations

import asyncio
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

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/stores.py` as well as `python -m bench`
    sys.path.insert(0, str(ROOT))

from tests.stores.servers import (  # noqa: E402
    PostgresServer,
    RedisServer,
    ServiceProcess,
    find_binary,
    service_env,
)

from silentauth.core.passwords import Passwords  # noqa: E402
from silentauth.stores.base import User, open_store  # noqa: E402

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


async def _login_pool(urls: list[str], n: int, client: httpx.AsyncClient) -> list[str]:
    sem = asyncio.Semaphore(16)

    async def one(i: int) -> str:
        async with sem:
            r = await client.post(
                f"{urls[i % len(urls)]}/auth/token",
                data={"grant_type": "password", "username": "bench", "password": "bench"},
            )
            r.raise_for_status()
            return str(r.json()["refresh_token"])

    return list(await asyncio.gather(*(one(i) for i in range(n))))


async def _drive(urls: list[str], sessions: int, seconds: float, concurrency: int) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        tokens = await _login_pool(urls, sessions, client)
        random.Random(1).shuffle(tokens)
        pool: asyncio.Queue[str] = asyncio.Queue()
        for t in tokens:
            pool.put_nowait(t)
        latencies: list[float] = []
        errors: dict[str, int] = {}
        warmup_end = time.monotonic() + min(1.0, seconds / 5)
        end = warmup_end + seconds

        async def worker(k: int) -> None:
            i = k
            while time.monotonic() < end:
                token = await pool.get()
                url = urls[i % len(urls)]
                i += 1
                t0 = time.monotonic()
                try:
                    r = await client.post(
                        f"{url}/auth/token", data={"grant_type": "refresh_token", "refresh_token": token}
                    )
                except httpx.HTTPError as exc:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                    pool.put_nowait(token)
                    continue
                t1 = time.monotonic()
                if r.status_code == 200:
                    pool.put_nowait(r.json()["refresh_token"])
                    if t0 >= warmup_end:
                        latencies.append(t1 - t0)
                else:
                    errors[str(r.status_code)] = errors.get(str(r.status_code), 0) + 1
                    pool.put_nowait(token)

        await asyncio.gather(*(worker(k) for k in range(concurrency)))
    latencies.sort()
    n = len(latencies)
    return {
        "refreshes_per_s": round(n / seconds, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2) if n else None,
        "p99_ms": round(latencies[min(n - 1, int(n * 0.99))] * 1000, 2) if n else None,
        "requests": n,
        "errors": errors,
    }


def _config(url: str, processes: int, sessions: int, seconds: float, concurrency: int) -> dict[str, Any]:
    _seed(url)
    env = service_env(url, log_level="error")
    env.pop("SILENTAUTH_RATE_LIMIT_REFRESH")  # the shipped default: 60/minute per session
    servers = [ServiceProcess(env) for _ in range(processes)]
    try:
        for s in servers:
            s.start()
        for s in servers:
            s.wait_ready()
        return asyncio.run(_drive([s.url for s in servers], sessions, seconds, concurrency))
    finally:
        for s in servers:
            s.stop()


def run(
    seconds: float = 8.0,
    concurrency: int = 64,
    sessions: int = 1000,
    stores: tuple[str, ...] = STORES,
    processes: tuple[int, ...] = (1, 2),
) -> dict[str, Any]:
    """Measure refreshes/s, p50 and p99 for each store and process count.

    Returns ``{store: {"1": {...}, "2": {...}} | {"skipped": why}, "setup": {...}}``.
    About ``seconds`` + 3 s per configuration.
    """
    results: dict[str, Any] = {
        "setup": {
            "seconds": seconds, "concurrency": concurrency, "sessions": sessions,
            "cpus": os.cpu_count(), "client": "httpx.AsyncClient, same machine, loopback",
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
                    str(p): _config(make_url(f"b{p}"), p, sessions, seconds, concurrency) for p in processes
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
    import json

    print(json.dumps(run(), indent=2))
