"""Where a refresh spends its time: our server under cProfile, under refresh load.

``python -m bench.profile_refresh [seconds]`` starts ``silentauth serve``
under ``cProfile`` with the same settings as :mod:`bench.refresh`, drives
refreshes with the same load generator, stops the server with SIGINT (so the
profile is written) and prints the functions that cost the most own time,
and the cumulative cost of the hot-path stages. Not part of ``make bench``:
cProfile's overhead inflates every call, so read shares, not absolutes.
"""

from __future__ import annotations

import pstats
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.loadgen import PASSWORD
from bench.measure import drive
from bench.servers import (
    ROOT,
    SERVER_CPU,
    Stack,
    _commands,
    _env,
    _wait,
    free_port,
    pin,
)

STAGES = (
    "auth_routes.py:.*(token)",
    "parsing.py:.*(read_form)",
    "sessions.py:.*(refresh)",
    "sessions.py:.*(_finish)",
    "sessions.py:.*(mint_access)",
    "tokens.py:.*(mint)",
    "keys.py:.*(sign)",
    "sqlite.py:.*(rotate)",
    "ratelimit.py:.*(check)",
    "refresh.py:.*(parse)",
    "refresh.py:.*(issue)",
    "responses.py:.*(__init__)",
    "metrics.py:.*(on_refresh)",
    "middleware.py:.*(__call__)",
    "httptools_impl.py:.*(on_url|on_header|on_headers_complete|on_body|on_message_complete|data_received)",
)


def serve_profiled(out: str, argv: list[str]) -> int:
    """``silentauth serve`` under a CPU-time cProfile; the profile is dumped on exit."""
    import cProfile
    import time

    from silentauth.cli import main as cli

    prof = cProfile.Profile(time.process_time)
    prof.enable()
    try:
        return cli(["serve", *argv])
    finally:
        prof.disable()
        prof.dump_stats(out)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--serve"]:
        return serve_profiled(argv[1], argv[2:])
    seconds = float(argv[0]) if argv else 8.0
    with tempfile.TemporaryDirectory(prefix="silentauth-profile-") as tmpdir:
        tmp = Path(tmpdir)
        port = free_port()
        setup, serve, extra, noop = _commands("silentauth", tmp, port)
        env = _env(extra)
        subprocess.run(setup, input=f"{PASSWORD}\n".encode(), env=env, cwd=ROOT, check=True, capture_output=True)
        out = tmp / "refresh.prof"
        # CPU-time profiler: on a shared machine, wall time would charge the
        # neighbours' slices to whichever of our functions was running.
        cmd = [sys.executable, "-m", "bench.profile_refresh", "--serve", str(out), *serve[4:]]
        log = tmp / "server.log"
        with log.open("wb") as f:
            proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, preexec_fn=pin(SERVER_CPU))
        try:
            _wait(proc, port, noop, log)
            (r,) = drive([(Stack("silentauth", port, "cProfile", proc.pid), "refresh")], connections=32, rounds=1, slice_s=seconds)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
        stats = pstats.Stats(str(out))
        # Every refresh mints exactly one access token: count refreshes by it.
        n = next(v[1] for k, v in stats.stats.items() if k[2] == "mint" and k[0].endswith("tokens.py"))  # type: ignore[attr-defined]
        total = sum(v[2] for v in stats.stats.values())  # type: ignore[attr-defined]
        print(f"{n} refreshes profiled ({r['rps'][0]:.0f}/s under cProfile); "
              f"{total / n * 1e6:.0f} us CPU each, profiler overhead included\n")
        stats.sort_stats("tottime").print_stats(30)
        print("cumulative cost of hot-path stages (per refresh):")
        for pattern in STAGES:
            stats_for(stats, pattern, n)
    return 0


def stats_for(stats: pstats.Stats, pattern: str, n: int) -> None:
    import re

    rx = re.compile(pattern)
    for (file, line, func), (_cc, calls, _tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if rx.search(f"{Path(file).name}:{line}({func})"):
            print(f"  {Path(file).name}:{func:<28} calls/refresh {calls / max(n, 1):5.2f}  cumulative us/refresh {ct / max(n, 1) * 1e6:8.1f}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
