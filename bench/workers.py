"""Refreshes/s with ``serve --workers 1`` and ``--workers 2``, on SQLite and on PostgreSQL, load generator counted.

Unlike ``bench.refresh`` (server pinned to one core, load generator to the
other), nothing is pinned here: the servers and the load generator share
every core, as they would when a box serves and is load-tested at once. So
the rate is what the whole machine sustains with the load generator's CPU
included, and next to it stand the servers' CPU per refresh and the load
generator's (from its own rusage). All four servers (two stores x two worker
counts) run side by side on their own databases and are driven in
interleaved slices, so drift hits them alike.

PostgreSQL is a throwaway instance started here (``initdb`` + ``postgres``,
as the store tests do: ``synchronous_commit`` on, ``fsync`` off, so a commit
reaches the operating system before the answer, as SQLite's WAL with
``synchronous=NORMAL`` does); it runs on the same two cores. The servers' CPU
per refresh does not include it: its own CPU per refresh is reported beside.
Without PostgreSQL binaries its rows say "skipped".

``python -m bench.workers`` prints one JSON document.
"""

from __future__ import annotations

import contextlib
import json
import resource
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.loadgen import CLOCK_TICKS, PASSWORD, cpu_ticks, process_tree
from bench.measure import ratio, summary
from bench.servers import ROOT, Stack, _commands, _env, _wait, free_port, stop

COUNTS = (1, 2)


@contextlib.contextmanager
def _postgres() -> Iterator[tuple[Callable[[str], str], int] | None]:
    """(database maker, postmaster pid), or None when PostgreSQL is not installed."""
    from tests.stores.servers import PostgresServer, find_binary

    if not (find_binary("initdb") and find_binary("postgres")):
        yield None
        return
    pg = PostgresServer()
    pg.init()
    pg.start()
    try:
        assert pg.proc is not None
        yield pg.create_database, pg.proc.pid
    finally:
        pg.stop()


@contextlib.contextmanager
def servers(stores: dict[str, Callable[[str, Path], str]]) -> Iterator[list[Stack]]:
    """One ``silentauth serve --workers N`` per store and count, unpinned, each on its own database."""
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="silentauth-workers-") as tmpdir:
        try:
            stacks = []
            for store, make_url in stores.items():
                for n in COUNTS:
                    tmp = Path(tmpdir) / f"{store}-w{n}"
                    tmp.mkdir()
                    port = free_port()
                    setup, serve, extra, noop = _commands("silentauth", tmp, port)
                    extra["SILENTAUTH_DATABASE_URL"] = make_url(f"w{n}", tmp)
                    if store != "sqlite":  # a shared store needs the public URL named
                        extra["SILENTAUTH_ISSUER"] = f"http://127.0.0.1:{port}"
                    env = _env({**extra, "SILENTAUTH_WORKERS": str(n)})
                    subprocess.run(setup, input=f"{PASSWORD}\n".encode(), env=env, cwd=ROOT, check=True, capture_output=True)
                    log = tmp / "serve.log"
                    with log.open("wb") as out:
                        proc = subprocess.Popen(serve, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
                    procs.append(proc)
                    _wait(proc, port, noop, log)
                    stacks.append(Stack(f"{store} workers={n}", port, f"uvicorn, {n} process(es), {store}", proc.pid))
            yield stacks
        finally:
            stop(procs, timeout=30)


def _drive(stacks: list[Stack], rounds: int, slice_s: float, connections: int) -> tuple[dict[str, Any], float]:
    """Per-target summaries, and the load generator's CPU seconds for the whole run."""
    spec = {
        "targets": [
            {"stack": s.name, "dialect": "silentauth", "port": s.port, "mode": "refresh", "pid": s.pid} for s in stacks
        ],
        "connections": connections,
        "rounds": rounds,
        "slice": slice_s,
        "warmup": 0.5,
    }
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(
        [sys.executable, "-m", "bench.loadgen", json.dumps(spec)],
        capture_output=True, text=True, cwd=ROOT, env=_env({}), timeout=900,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"load generator failed:\n{proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {r["stack"]: summary(r) for r in json.loads(proc.stdout)["targets"]}, cpu


def run(rounds: int = 4, slice_s: float = 2.0, connections: int = 64) -> dict[str, Any]:
    """Measure and return the figures."""
    with _postgres() as pg:
        stores: dict[str, Callable[[str, Path], str]] = {"sqlite": lambda name, tmp: f"sqlite:///{tmp / 'silentauth.db'}"}
        if pg is not None:
            make_db, _ = pg
            stores["postgres"] = lambda name, tmp: make_db(f"{tmp.name.replace('-', '_')}")
        with servers(stores) as stacks:
            # PostgreSQL's backends are the postmaster's children and serve both
            # PostgreSQL targets: their CPU is reported for the two together.
            pg_pids = process_tree(pg[1]) if pg is not None else []
            pg_ticks = cpu_ticks(pg_pids)
            results, loadgen_cpu = _drive(stacks, rounds, slice_s, connections)
            pg_cpu = (cpu_ticks(process_tree(pg[1])) - pg_ticks) / CLOCK_TICKS if pg is not None else 0.0
    requests = sum(r["median"] * slice_s * rounds for r in results.values())
    pg_requests = sum(r["median"] * slice_s * rounds for name, r in results.items() if name.startswith("postgres"))
    out: dict[str, Any] = {
        "name": "workers",
        "unit": "refreshes/s (whole machine, load generator on the same cores)",
        "rounds": rounds,
        "slice_s": slice_s,
        "connections": connections,
        "results": results,
        # Approximate (the logins of set-up are in it too): what driving one refresh costs the client side.
        "loadgen_cpu_us_per_refresh": round(loadgen_cpu / requests * 1e6, 1) if requests else None,
        "postgres_server_cpu_us_per_refresh": round(pg_cpu / pg_requests * 1e6, 1) if pg_requests else None,
    }
    for store in stores:
        one, two = results[f"{store} workers=1"], results[f"{store} workers=2"]
        out[f"{store}_two_over_one"] = ratio(two["median"], one["median"])
    if pg is None:
        out["postgres"] = {"skipped": "PostgreSQL binaries (initdb, postgres) not installed"}
    return out


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
