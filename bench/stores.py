"""Refresh throughput per store, with one and with two server processes.

``run()`` starts throwaway PostgreSQL and Redis servers (as the tests do), then
for each store and each process count: seeds one user, logs in a pool of
sessions, and drives ``grant_type=refresh_token`` over loopback keep-alive
connections for a fixed time (:mod:`bench.refresh_pool`: each request takes a
session's current refresh token from the pool and puts the successor back, so
no two requests race on one token and every answer is a real rotation). Rate
limits stay at their defaults (refresh limits count in each process's memory,
so they add no store round trip); 3,000 sessions keep each one under its 60
refreshes a minute at these rates.

The load generator shares the machine with the servers and the database;
compare stores and process counts with each other, not with other hardware.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/stores.py` as well as `python -m bench`
    sys.path.insert(0, str(ROOT))

from bench import refresh_pool  # noqa: E402
from tests.stores.servers import (  # noqa: E402
    PostgresServer,
    RedisServer,
    ServiceProcess,
    find_binary,
    service_env,
)

STORES = ("sqlite", "postgres", "redis")


async def _drive(ports: list[int], sessions: int, seconds: float, concurrency: int) -> dict[str, Any]:
    conns = await refresh_pool.connect(ports, concurrency)
    try:
        pool = await refresh_pool.login_pool(conns, sessions)
        done = await refresh_pool.refresh_from(conns, pool, seconds, warmup=min(1.0, seconds / 5))
    finally:
        refresh_pool.close(conns)
    latencies = sorted(done.latencies)
    n = len(latencies)
    return {
        "refreshes_per_s": round(n / seconds, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2) if n else None,
        "p99_ms": round(latencies[min(n - 1, int(n * 0.99))] * 1000, 2) if n else None,
        "requests": n,
        "errors": done.errors,
    }


def _config(
    url: str, processes: int, sessions: int, seconds: float, concurrency: int, rate_limits: bool
) -> dict[str, Any]:
    refresh_pool.seed_user(url)
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
