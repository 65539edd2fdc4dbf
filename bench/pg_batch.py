"""A/B of the PostgreSQL store's batched swap, in process: ``store.rotate_many`` of B sessions.

``python -m bench.pg_batch OLD/src NEW/src [--rounds 6] [--batch 32] [--batches 300]``
starts a throwaway PostgreSQL (as the store tests do: ``fsync`` off, every commit
still written), gives each source tree its own database of 1,024 sessions, and
runs the trees in alternating subprocesses, round by round. Each round rotates
``--batches`` batches of ``--batch`` distinct sessions (every swap succeeds) and
reports, per swap: the Python process's CPU time (the store's share of the
service's CPU), PostgreSQL's CPU time (the tree's own backends, from ``/proc``;
autovacuum, the WAL writer and other background processes are left out, alike for both
trees) and the wall time of a batch. Medians over the rounds, and each round.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SESSIONS = 1024


def _ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total


async def _child(url: str, batch: int, batches: int) -> dict[str, float]:
    """One round in this process, with whichever silentauth is on the path."""
    import psycopg

    from silentauth.core.ports import RotateRequest, SessionRecord
    from silentauth.stores.postgres import PostgresStore

    store = PostgresStore(url)
    await store.open()
    try:
        with psycopg.connect(url, autocommit=True) as admin:
            rows = admin.execute("SELECT id, counter FROM sessions ORDER BY id").fetchall()
            if not rows:
                now = time.time()
                for i in range(SESSIONS):
                    await store.create_session(SessionRecord(
                        id=f"bench-{i:05d}-{os.urandom(8).hex()}", user_id=f"u{i % 64}", username="bench",
                        counter=0, scope="openid", client_id="native", auth_time=now, created_at=now,
                        last_used_at=now, rotated_at=now, idle_expires_at=now + 1e6, expires_at=now + 2e6,
                        user_agent="bench", ip="127.0.0.1",
                    ))
                rows = admin.execute("SELECT id, counter FROM sessions ORDER BY id").fetchall()
            counters = {str(r[0]): int(r[1]) for r in rows}
            ids = list(counters)
            # Warm up: the pool's connections, psycopg's prepared statements.
            for k in range(20):
                chunk = ids[(k * batch) % SESSIONS:][:batch]
                res = await store.rotate_many([RotateRequest(s, counters[s], time.time() + 1e5) for s in chunk], time.time())
                for s, r in zip(chunk, res, strict=True):
                    counters[s] += r.swapped
            backends = [int(r[0]) for r in admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND backend_type = 'client backend'"
            ).fetchall()]
        swaps = 0
        pg0, cpu0, wall0 = _ticks(backends), time.process_time(), time.perf_counter()
        for k in range(batches):
            chunk = ids[(k * batch) % SESSIONS:][:batch]
            res = await store.rotate_many([RotateRequest(s, counters[s], time.time() + 1e5) for s in chunk], time.time())
            for s, r in zip(chunk, res, strict=True):
                assert r.swapped, "every swap of the bench succeeds"
                counters[s] += 1
            swaps += len(chunk)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        pg = (_ticks(backends) - pg0) / os.sysconf("SC_CLK_TCK")
    finally:
        await store.close()
    return {"python_us": cpu / swaps * 1e6, "postgres_us": pg / swaps * 1e6, "wall_us_per_batch": wall / batches * 1e6}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.pg_batch", description=__doc__)
    p.add_argument("trees", nargs="*", help="source trees (directories holding the silentauth package)")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--batches", type=int, default=300)
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(asyncio.run(_child(args.child, args.batch, args.batches))))
        return 0
    sys.path.insert(0, str(ROOT))
    from tests.stores.servers import PostgresServer

    pg = PostgresServer()
    pg.init()
    pg.start()
    try:
        urls = [pg.create_database(f"ab{i}") for i in range(len(args.trees))]
        runs: list[list[dict[str, float]]] = [[] for _ in args.trees]
        for _ in range(args.rounds):
            for i, tree in enumerate(args.trees):
                env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(tree).resolve()), str(ROOT)])}
                out = subprocess.run(
                    [sys.executable, "-m", "bench.pg_batch", "--child", urls[i],
                     "--batch", str(args.batch), "--batches", str(args.batches)],
                    env=env, cwd=ROOT, check=True, capture_output=True, text=True,
                )
                runs[i].append(json.loads(out.stdout))
    finally:
        pg.stop()
    for tree, rounds in zip(args.trees, runs, strict=True):
        line = {k: round(statistics.median(r[k] for r in rounds), 1) for k in rounds[0]}
        each = {k: [round(r[k], 1) for r in rounds] for k in rounds[0]}
        print(f"{tree}: batch of {args.batch}, median per swap {line}; rounds {each}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
