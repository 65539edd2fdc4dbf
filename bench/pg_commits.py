"""The PostgreSQL primary's commit rate for rotations, with fsync on, for ``docs/scaling.md``.

One refresh on PostgreSQL is one ``UPDATE sessions ... RETURNING`` of one row
(``stores/postgres.py``, ``_ROTATE``); the service batches the refreshes that
arrive in one event-loop turn into one transaction (``core/batch.py``), so a
commit carries 1 to a few dozen rotations (since 2026-12-01 a batch's swaps go in one
statement, ``_ROTATE_MANY``, instead of this statement and a read of the row per
refresh: ``bench/README.md``). This drives the single-row statement with
``pgbench`` (C, so the client is not what saturates) against a durable server:
``fsync=on``, ``synchronous_commit=on``, ``full_page_writes=on`` (the
throwaway servers of the tests and of ``capacity.py`` turn all three off).

For each batch size (rotations per transaction) and client count it records:

- ``commits_per_s`` and ``rotations_per_s`` (pgbench's tps × batch);
- ``wal_bytes_per_rotation`` (``pg_current_wal_lsn()`` before and after);
- ``commits_per_fsync`` (``pg_stat_wal.wal_sync``): group commit, many
  commits sharing one flush of the WAL;
- ``server_cpu_us_per_rotation`` (postmaster and backends, from ``/proc``).

These per-rotation costs carry over to other hardware; the rates are this
machine's (its disk's flush latency and 2 shared CPUs, with pgbench on them).
Run: ``python bench/pg_commits.py [seconds] [sessions]`` (default 8 s per
configuration over 100,000 sessions; about a minute and a half).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.capacity import PARALLEL, postgres_cpu, sessions  # noqa: E402
from silentauth.stores.base import open_store  # noqa: E402
from silentauth.stores.postgres_schema import SESSION_COLS  # noqa: E402
from tests.stores.servers import PostgresServer, find_binary  # noqa: E402

CONFIGS = ((1, 8), (1, 32), (1, 96), (8, 32), (32, 32))  # (rotations per transaction, pgbench clients)


class DurablePostgres(PostgresServer):
    """The tests' throwaway server with PostgreSQL's durable defaults back."""

    durability: ClassVar[tuple[str, ...]] = ("fsync=on", "synchronous_commit=on", "full_page_writes=on",
                                             "max_connections=200")  # fmt: skip


def _script(batch: int, clients: int, n: int) -> str:
    # The store's rotation (same columns, same RETURNING), on ids made addressable
    # by pgbench: "s" + 21 digits, 22 characters like token_urlsafe(16).
    now = time.time()
    update = (
        f"UPDATE sessions SET counter = counter + 1, rotated_at = {now}, last_used_at = {now}, "
        f"idle_expires_at = least({now + 14 * 86400}, expires_at) "
        "WHERE id = 's' || lpad(:i::text, 21, '0') AND counter >= 0 AND revoked_at IS NULL "
        f"AND idle_expires_at > {now} AND expires_at > {now} RETURNING {SESSION_COLS};"
    )
    # Each client draws from its own rows, as each session is refreshed by one
    # client at a time: no lock waits and no deadlocks between transactions.
    lines = [f"\\set i :client_id + {clients} * random(0, {n // clients - 1})", update]
    if batch == 1:
        return "\n".join(lines) + "\n"
    body = []
    for _ in range(batch):
        body += lines
    return "\n".join(["BEGIN;", *body, "COMMIT;"]) + "\n"


def _fill(url: str, n: int) -> None:
    records = [dataclasses.replace(r, id="s" + str(i).zfill(21)) for i, r in enumerate(sessions(n))]

    async def go() -> None:
        store = open_store(url)
        await store.open()
        try:
            for i in range(0, n, PARALLEL):
                await asyncio.gather(*(store.create_session(s) for s in records[i : i + PARALLEL]))
        finally:
            await store.close()

    asyncio.run(go())


def _server_cpu(postmaster: int) -> float:
    """CPU seconds of the server, ended backends included.

    pgbench's backends exit when it does; the postmaster reaps them, so their
    time is in its children's fields (cutime, cstime) by the time we read.
    """
    fields = Path(f"/proc/{postmaster}/stat").read_text().rsplit(")", 1)[1].split()
    return postgres_cpu(postmaster) + (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def _wal(url: str) -> tuple[int, int]:
    """(current WAL position in bytes, WAL flushes so far)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn, (SELECT wal_sync FROM pg_stat_wal)"
        ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])


def _pgbench(pgbench: str, url: str, script: Path, clients: int, seconds: float) -> float:
    out = subprocess.run(
        [pgbench, "-n", "-M", "prepared", "-c", str(clients), "-j", "2", "-T", str(int(seconds)),
         "-f", str(script), url],
        capture_output=True, text=True, timeout=seconds + 120, check=True,
    ).stdout  # fmt: skip
    match = re.search(r"tps = ([0-9.]+)", out)
    if match is None:
        raise RuntimeError(f"no tps in pgbench output: {out[-500:]}")
    return float(match.group(1))


def run(seconds: float = 8.0, n: int = 100_000) -> dict[str, Any]:
    """Measure each of :data:`CONFIGS` on one durable server holding ``n`` sessions."""
    pgbench = find_binary("pgbench")
    if pgbench is None or find_binary("postgres") is None:
        return {"skipped": "PostgreSQL (postgres, pgbench) not installed"}
    server = DurablePostgres()
    server.init()
    server.start()
    out: dict[str, Any] = {"sessions": n, "seconds": seconds, "settings": list(server.durability)}
    try:
        assert server.proc is not None
        url = server.create_database("commits")
        _fill(url, n)
        tmp = Path(tempfile.mkdtemp(prefix="silentauth-pgbench-"))
        for batch, clients in CONFIGS:
            script = tmp / f"rotate{batch}.sql"
            script.write_text(_script(batch, clients, n))
            _pgbench(pgbench, url, script, clients, 2)  # warm the cache and the prepared plans
            (lsn0, sync0), cpu0 = _wal(url), _server_cpu(server.proc.pid)
            client0 = os.times()
            tps = _pgbench(pgbench, url, script, clients, seconds)
            client1 = os.times()
            (lsn1, sync1), cpu1 = _wal(url), _server_cpu(server.proc.pid)
            rotations = tps * batch * seconds
            out[f"batch {batch}, {clients} clients"] = {
                "commits_per_s": round(tps),
                "rotations_per_s": round(tps * batch),
                "wal_bytes_per_rotation": round((lsn1 - lsn0) / rotations),
                "commits_per_fsync": round(tps * seconds / max(1, sync1 - sync0), 1),
                "fsyncs_per_s": round((sync1 - sync0) / seconds),
                "server_cpu_us_per_rotation": round((cpu1 - cpu0) / rotations * 1e6, 1),
                "pgbench_cpu_us_per_rotation": round(
                    (client1.children_user + client1.children_system - client0.children_user - client0.children_system) / rotations * 1e6, 1
                ),
            }
            print(batch, clients, json.dumps(out[f"batch {batch}, {clients} clients"]), file=sys.stderr, flush=True)
    finally:
        server.stop()
    return out


if __name__ == "__main__":
    args = sys.argv[1:]
    print(json.dumps(run(float(args[0]) if args else 8.0, int(args[1]) if len(args) > 1 else 100_000), indent=2))
