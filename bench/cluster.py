"""Redis Cluster: refresh rate with 3 shards against 1 shard (and one plain Redis).

``run()`` starts three setups side by side and keeps them all running, so that
rounds interleave (a noisy neighbour hits every setup alike):

- ``redis``: one plain Redis (``redis://``), the single-Redis reference;
- ``cluster-1``: a 1-shard Redis Cluster (one node holding all 16,384 slots),
  reached through the same cluster client as the next, so that the two differ
  in the number of shards only;
- ``cluster-3``: a 3-shard Redis Cluster.

No replicas and ``appendfsync no`` on every node (as the single Redis of the
store tests): the comparison is of the shards' own work, not of replication or
of the disk. Each setup is served by ``services`` ``silentauth serve`` processes
(rate limits off) and driven by ``loaders`` load-generator processes at once,
each with its own keep-alive connections spread over the services and its own
pool of logged-in sessions (a token is never presented twice: every answer is a
real rotation). One process could not load three shards: one Python client
tops out well below what a shard serves.

Per slice: refreshes/s, each master's CPU (``INFO cpu``, less what it burns
idle, measured once before the rounds), the service processes' CPU (``/proc``)
and the load generators' CPU. Derived per setup:

- ``shard_bound_per_s``: the refresh rate at which the busiest master would use
  one whole core (rate ÷ its CPU share). This is what the shards carry when the
  token service and the load run on other machines; on this machine they do
  not, so the measured rate ratio only bounds the scaling from below.
- ``master_share``: the fraction of the Redis CPU each master took (balance of
  the hash slots; one third each is ideal).

``python -m bench.cluster`` (or ``python bench/cluster.py``) prints the dict as JSON.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/cluster.py` as well as `python -m bench`
    sys.path.insert(0, str(ROOT))

from bench import refresh_pool  # noqa: E402
from bench.loadgen import CLOCK_TICKS, cpu_ticks  # noqa: E402
from tests.stores.servers import (  # noqa: E402
    RedisClusterServers,
    RedisServer,
    ServiceProcess,
    find_binary,
    service_env,
)

SETUPS = ("redis", "cluster-1", "cluster-3")


@dataclass
class Setup:
    """One store deployment and the service processes in front of it."""

    name: str
    url: str
    masters: list[int]  # ports whose INFO cpu is the store's work
    services: list[ServiceProcess] = field(default_factory=list)

    def redis_cpu(self) -> list[float]:
        import redis

        out = []
        for port in self.masters:
            with redis.Redis(port=port, socket_timeout=5) as c:
                info = c.info("cpu")
                out.append(float(info["used_cpu_user"]) + float(info["used_cpu_sys"]))
        return out

    def service_cpu(self) -> float:
        return cpu_ticks([s.proc.pid for s in self.services if s.proc is not None]) / CLOCK_TICKS


@contextmanager
def _setups(services: int) -> Iterator[list[Setup]]:
    with ExitStack() as stack:
        single = RedisServer()
        single.start()
        stack.callback(single.stop)
        setups = [Setup("redis", single.url(0), [single.port])]
        for shards in (1, 3):
            cluster = RedisClusterServers(masters=shards, replicas=0, appendfsync="no")
            stack.callback(cluster.stop)
            cluster.start()
            setups.append(Setup(f"cluster-{shards}", cluster.url, [n.port for n in cluster.nodes]))
        for setup in setups:
            refresh_pool.seed_user(setup.url)
            env = service_env(setup.url, log_level="error")
            setup.services = [ServiceProcess(env) for _ in range(services)]
            for s in setup.services:
                stack.callback(s.stop)
                s.start()
        for setup in setups:
            for s in setup.services:
                s.wait_ready()
        yield setups


def _loader(pipe: Connection, ports: dict[str, list[int]], sessions: int, concurrency: int) -> None:
    """One load-generator process: log in a pool per setup, then drive slices on command."""
    asyncio.run(_load(pipe, ports, sessions, concurrency))


async def _load(pipe: Connection, ports: dict[str, list[int]], sessions: int, concurrency: int) -> None:
    loop = asyncio.get_running_loop()
    conns = {name: await refresh_pool.connect(p, concurrency) for name, p in ports.items()}
    pools = {name: await refresh_pool.login_pool(cs, sessions) for name, cs in conns.items()}
    pipe.send("ready")
    while True:
        command = await loop.run_in_executor(None, pipe.recv)
        if command == "stop":
            break
        name, seconds = command
        cpu0 = time.process_time()
        done = await refresh_pool.refresh_from(conns[name], pools[name], seconds)
        pipe.send({"refreshes": done.done, "errors": sum(done.errors.values()), "cpu_s": time.process_time() - cpu0})
    for cs in conns.values():
        refresh_pool.close(cs)


def _idle(setups: list[Setup], seconds: float = 3.0) -> dict[str, list[float]]:
    """Each master's CPU seconds per second with no load: the services' feed polls
    and Redis's own timers, which a slice's CPU share must not count as rotations."""
    before = {s.name: s.redis_cpu() for s in setups}
    time.sleep(seconds)
    return {s.name: [(b - a) / seconds for a, b in zip(before[s.name], s.redis_cpu(), strict=True)] for s in setups}


def _slice(setup: Setup, pipes: list[Connection], seconds: float, idle: list[float]) -> dict[str, Any]:
    redis0, svc0, t0 = setup.redis_cpu(), setup.service_cpu(), time.monotonic()
    for p in pipes:
        p.send((setup.name, seconds))
    replies = [p.recv() for p in pipes]
    wall = time.monotonic() - t0
    redis1, svc1 = setup.redis_cpu(), setup.service_cpu()
    n = sum(r["refreshes"] for r in replies)
    per_master = [max(0.0, b - a - i * wall) for a, b, i in zip(redis0, redis1, idle, strict=True)]
    busiest = max(per_master) / wall
    return {
        "refreshes_per_s": n / seconds,
        "errors": sum(r["errors"] for r in replies),
        "redis_cpu_us": sum(per_master) / n * 1e6 if n else None,
        "service_cpu_us": (svc1 - svc0) / n * 1e6 if n else None,
        "loader_cpu_us": sum(r["cpu_s"] for r in replies) / n * 1e6 if n else None,
        "busiest_master_util": busiest,
        "shard_bound_per_s": n / seconds / busiest if busiest else None,
        "master_share": [c / sum(per_master) for c in per_master] if sum(per_master) else None,
    }


def _median(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r[key] is not None]
    return round(statistics.median(values), 1) if values else None


def run(
    rounds: int = 3, slice_s: float = 4.0, services: int = 3, loaders: int = 2, concurrency: int = 16,
    sessions: int = 500,
) -> dict[str, Any]:  # fmt: skip
    """Interleaved rounds over :data:`SETUPS`; medians per setup and the 3-shard ratios."""
    if not (find_binary("redis-server") and find_binary("redis-cli")):
        return {"skipped": "redis-server or redis-cli not installed"}
    result: dict[str, Any] = {
        "setup": {
            "rounds": rounds, "slice_s": slice_s, "service_processes": services, "load_processes": loaders,
            "connections": loaders * concurrency, "sessions": loaders * sessions, "cpus": os.cpu_count(),
            "redis": "no replicas, appendfsync no; rate limits off", "load_average_before": round(os.getloadavg()[0], 2),
        }
    }  # fmt: skip
    ctx = multiprocessing.get_context("spawn")
    with _setups(services) as setups:
        ports = {s.name: [p.port for p in s.services] for s in setups}
        pipes, procs = [], []
        for _ in range(loaders):
            mine, theirs = ctx.Pipe()
            proc = ctx.Process(target=_loader, args=(theirs, ports, sessions, concurrency), daemon=True)
            proc.start()
            theirs.close()  # so that a loader that dies is an EOFError here, not a hang
            pipes.append(mine)
            procs.append(proc)
        try:
            for p in pipes:
                if p.recv() != "ready":
                    raise RuntimeError("a load generator failed to start")
            idle = _idle(setups)
            result["setup"]["idle_master_cpu_pct"] = {k: [round(100 * x, 2) for x in v] for k, v in idle.items()}
            slices: dict[str, list[dict[str, Any]]] = {s.name: [] for s in setups}
            for _ in range(rounds):
                for setup in setups:
                    slices[setup.name].append(_slice(setup, pipes, slice_s, idle[setup.name]))
        finally:
            for p in pipes:
                with suppress(OSError):  # a loader that died has no pipe to read "stop"
                    p.send("stop")
            for proc in procs:
                proc.join(timeout=10)
                if proc.is_alive():
                    proc.terminate()
    for name, rows in slices.items():
        result[name] = {
            "refreshes_per_s": _median(rows, "refreshes_per_s"),
            "rounds": [round(r["refreshes_per_s"]) for r in rows],
            "errors": sum(r["errors"] for r in rows),
            "redis_cpu_us_per_refresh": _median(rows, "redis_cpu_us"),
            "service_cpu_us_per_refresh": _median(rows, "service_cpu_us"),
            "loader_cpu_us_per_refresh": _median(rows, "loader_cpu_us"),
            "busiest_master_util": round(statistics.median(r["busiest_master_util"] for r in rows), 3),
            "shard_bound_per_s": _median(rows, "shard_bound_per_s"),
            "master_share": [round(statistics.median(s), 3) for s in zip(*(r["master_share"] for r in rows), strict=True)]
            if all(r["master_share"] for r in rows)
            else None,
        }

    def ratio(a: str, b: str, key: str) -> float | None:
        x, y = result[a][key], result[b][key]
        return round(x / y, 2) if x and y else None

    result["ratios"] = {
        "cluster-3 / cluster-1, measured rate (a lower bound on 2 CPUs)": ratio("cluster-3", "cluster-1", "refreshes_per_s"),
        "cluster-3 / cluster-1, shard-bound rate": ratio("cluster-3", "cluster-1", "shard_bound_per_s"),
        "cluster-1 / redis, measured rate (cost of the cluster client)": ratio("cluster-1", "redis", "refreshes_per_s"),
        "cluster-3 / redis, measured rate": ratio("cluster-3", "redis", "refreshes_per_s"),
    }  # fmt: skip
    result["setup"]["load_average_after"] = round(os.getloadavg()[0], 2)
    return result


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
