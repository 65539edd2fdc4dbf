"""A/B: ``silentauth serve`` from two source trees, side by side, same load generator.

``python -m bench.ab OLD/src NEW/src [--rounds 10] [--slice 1.0] [--connections 32]
[--modes noop,refresh]`` starts one server per tree (each pinned to the server CPU,
its own SQLite file), drives both in interleaved slices and prints the server CPU per
request of each, round by round. For a change of the hot path this is the end-to-end
figure: the neighbours' noise hits both trees alike. Get a tree of the old code with
``git archive <commit> src | tar -x -C /some/dir``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.loadgen import PASSWORD
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


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__)
    p.add_argument("a", help="source tree A (the directory holding the silentauth package)")
    p.add_argument("b", help="source tree B")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--slice", type=float, default=1.0)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--modes", default="refresh")
    args = p.parse_args(argv)
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="silentauth-ab-") as tmpdir:
        try:
            stacks = []
            for tag, src in (("A", args.a), ("B", args.b)):
                tmp = Path(tmpdir) / tag
                tmp.mkdir()
                port = free_port()
                setup, serve, extra, noop = _commands("silentauth", tmp, port)
                env = {**os.environ, **extra, "PYTHONPATH": os.pathsep.join([str(Path(src).resolve()), str(ROOT)])}
                subprocess.run(setup, input=f"{PASSWORD}\n".encode(), env=env, cwd=ROOT, check=True, capture_output=True)
                log = tmp / "serve.log"
                with log.open("wb") as out:
                    proc = subprocess.Popen(serve, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, preexec_fn=pin(SERVER_CPU))
                procs.append(proc)
                _wait(proc, port, noop, log)
                stacks.append(Stack("silentauth", port, tag, proc.pid))
            targets = [(s, m) for m in args.modes.split(",") for s in stacks]
            results = drive(targets, connections=args.connections, rounds=args.rounds, slice_s=args.slice)
            for (stack, mode), r in zip(targets, results, strict=True):
                s = summary(r)
                rounds = ", ".join(f"{x:.1f}" for x in sorted(r["cpu_us_per_request"]))
                print(f"{stack.served_by} {mode:8} median {s['cpu_us']} us CPU/request (rounds, sorted: {rounds}); "
                      f"{s['median']:,.0f}/s")
        finally:
            stop(procs)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
