"""Refreshes/s with ``serve --workers 1`` and ``--workers 2`` on this machine, load generator counted.

Unlike ``bench.refresh`` (server pinned to one core, load generator to the
other), nothing is pinned here: the servers and the load generator share
every core, as they would when a box serves and is load-tested at once. So
the figure is what the whole machine sustains, the load generator's CPU
included. Both servers run side by side on their own SQLite files and are
driven in interleaved slices, so drift hits them alike.

``python -m bench.workers`` prints one JSON document.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.loadgen import PASSWORD
from bench.measure import ratio, summary
from bench.servers import ROOT, Stack, _commands, _env, _wait, free_port


@contextlib.contextmanager
def servers(counts: tuple[int, ...]) -> Iterator[list[Stack]]:
    """One ``silentauth serve --workers N`` per count, unpinned, on its own SQLite file."""
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="silentauth-workers-") as tmpdir:
        try:
            stacks = []
            for n in counts:
                tmp = Path(tmpdir) / f"w{n}"
                tmp.mkdir()
                port = free_port()
                setup, serve, extra, noop = _commands("silentauth", tmp, port)
                env = _env({**extra, "SILENTAUTH_WORKERS": str(n)})
                subprocess.run(setup, input=f"{PASSWORD}\n".encode(), env=env, cwd=ROOT, check=True, capture_output=True)
                log = tmp / "serve.log"
                with log.open("wb") as out:
                    proc = subprocess.Popen(serve, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
                procs.append(proc)
                _wait(proc, port, noop, log)
                stacks.append(Stack(f"workers={n}", port, f"uvicorn, {n} process(es)", proc.pid))
            yield stacks
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def run(rounds: int = 4, slice_s: float = 2.0, connections: int = 64) -> dict[str, Any]:
    """Measure and return the figures."""
    with servers((1, 2)) as stacks:
        spec = {
            "targets": [
                {"stack": s.name, "dialect": "silentauth", "port": s.port, "mode": "refresh", "pid": s.pid}
                for s in stacks
            ],
            "connections": connections,
            "rounds": rounds,
            "slice": slice_s,
            "warmup": 0.5,
        }
        proc = subprocess.run(
            [sys.executable, "-m", "bench.loadgen", json.dumps(spec)],
            capture_output=True, text=True, cwd=ROOT, env=_env({}), timeout=600,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"load generator failed:\n{proc.stderr[-2000:]}")
        results = {r["stack"]: summary(r) for r in json.loads(proc.stdout)["targets"]}
    one, two = results["workers=1"], results["workers=2"]
    return {
        "name": "workers",
        "unit": "refreshes/s (whole machine, load generator on the same cores)",
        "rounds": rounds,
        "slice_s": slice_s,
        "connections": connections,
        "results": results,
        "two_over_one": ratio(two["median"], one["median"]),
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
