"""A/B: ``silentauth serve`` from two source trees, side by side, same load generator.

``python -m bench.ab OLD/src NEW/src [--rounds 10] [--slice 1.0] [--connections 32]
[--modes noop,refresh] [--postgres]`` starts one server per tree (each pinned to the
server CPU, its own SQLite file), drives both in interleaved slices and prints the server
CPU per request of each, round by round. With ``--postgres`` each tree gets its own
database on one throwaway PostgreSQL (as the store tests start it: ``fsync`` off, every
commit still written; not pinned), and the CPU of each tree's own backends per request
is printed too (autovacuum and PostgreSQL's background processes left out). For a change of the hot path this is the end-to-end
figure: the neighbours' noise hits both trees alike. Get a tree of the old code with
``git archive <commit> src | tar -x -C /some/dir``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from bench.loadgen import CLOCK_TICKS, PASSWORD, cpu_ticks
from bench.measure import drive, summary
from bench.servers import (
    ROOT,
    SERVER_CPU,
    Stack,
    _commands,
    _wait,
    free_port,
    pin,
    stop,
)

if TYPE_CHECKING:
    from tests.stores.servers import PostgresServer


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__)
    p.add_argument("a", help="source tree A (the directory holding the silentauth package)")
    p.add_argument("b", help="source tree B")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--slice", type=float, default=1.0)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--modes", default="refresh")
    p.add_argument("--postgres", action="store_true", help="each tree on its own PostgreSQL database")
    args = p.parse_args(argv)
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="silentauth-ab-") as tmpdir, contextlib.ExitStack() as stack:
        pg = stack.enter_context(_postgres()) if args.postgres else None
        urls: dict[str, str] = {}
        try:
            stacks = []
            for tag, src in (("A", args.a), ("B", args.b)):
                tmp = Path(tmpdir) / tag
                tmp.mkdir()
                port = free_port()
                setup, serve, extra, noop = _commands("silentauth", tmp, port)
                if pg is not None:
                    urls[tag] = extra["SILENTAUTH_DATABASE_URL"] = pg.create_database(f"ab_{tag.lower()}")
                    extra["SILENTAUTH_ISSUER"] = f"http://127.0.0.1:{port}"
                env = {**os.environ, **extra, "PYTHONPATH": os.pathsep.join([str(Path(src).resolve()), str(ROOT)])}
                subprocess.run(setup, input=f"{PASSWORD}\n".encode(), env=env, cwd=ROOT, check=True, capture_output=True)
                log = tmp / "serve.log"
                with log.open("wb") as out:
                    proc = subprocess.Popen(serve, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, preexec_fn=pin(SERVER_CPU))
                procs.append(proc)
                _wait(proc, port, noop, log)
                stacks.append(Stack("silentauth", port, tag, proc.pid))
            targets = [(s, m) for m in args.modes.split(",") for s in stacks]
            before = {tag: {pid: cpu_ticks([pid]) for pid in _backends(url)} for tag, url in urls.items()}
            results = drive(targets, connections=args.connections, rounds=args.rounds, slice_s=args.slice)
            # A backend the pool opened during the run counts from zero.
            used = {
                tag: sum(cpu_ticks([pid]) - before[tag].get(pid, 0) for pid in set(_backends(url)) | set(before[tag]))
                / CLOCK_TICKS
                for tag, url in urls.items()
            }
            served: dict[str, float] = {}
            for (st, mode), r in zip(targets, results, strict=True):
                s = summary(r)
                served[st.served_by] = served.get(st.served_by, 0.0) + s["median"] * args.slice * args.rounds
                rounds = ", ".join(f"{x:.1f}" for x in sorted(r["cpu_us_per_request"]))
                print(f"{st.served_by} {mode:8} median {s['cpu_us']} us CPU/request (rounds, sorted: {rounds}); "
                      f"{s['median']:,.0f}/s")
            for tag, seconds in used.items():
                # Approximate: requests counted from the median rate of each mode.
                print(f"{tag} PostgreSQL backends: {seconds / served[tag] * 1e6:.1f} us CPU/request")
        finally:
            stop(procs)
    return 0


@contextlib.contextmanager
def _postgres() -> Iterator[PostgresServer]:
    from tests.stores.servers import PostgresServer

    pg = PostgresServer()
    pg.init()
    pg.start()
    try:
        yield pg
    finally:
        pg.stop()


def _backends(url: str) -> list[int]:
    """The client backends serving ``url``'s database (the server's pool, opened at start-up)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
        ).fetchall()
    return [int(r[0]) for r in rows]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
