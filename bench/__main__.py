"""``python -m bench``: run every benchmark, print tables, save JSON.

``python -m bench --only refresh,login --rounds 5 --slice 2`` narrows a run.
A benchmark module written by someone else that is absent is skipped with a
note; one that fails is reported, and the others still run.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import machine, report
from bench.servers import available, running

RESULTS = Path(__file__).resolve().parent / "results"
OURS = ("refresh", "login")
OTHERS = ("resource", "client_overhead", "stores", "cluster", "realtime", "workers")


def _other(name: str) -> dict[str, Any]:
    try:
        module = importlib.import_module(f"bench.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"bench.{name}":
            return {"name": name, "skipped": f"bench/{name}.py is not present"}
        raise
    result: dict[str, Any] = module.run()
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--only", help=f"comma-separated subset of {', '.join(OURS + OTHERS)}")
    p.add_argument("--rounds", type=int, default=4, help="interleaved rounds per target (refresh)")
    p.add_argument("--slice", type=float, default=1.5, help="seconds per target per round")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--no-save", action="store_true", help="do not write bench/results/")
    args = p.parse_args(argv)
    chosen = [n.strip() for n in args.only.split(",")] if args.only else [*OURS, *OTHERS]
    unknown = set(chosen) - {*OURS, *OTHERS}
    if unknown:
        p.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")

    began = time.monotonic()
    doc: dict[str, Any] = {"started": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine.describe()}
    results: dict[str, Any] = {}
    with contextlib.ExitStack() as es:
        names, notes = available()
        for note in notes:
            print(f"bench: {note}", file=sys.stderr)
        doc["skipped_stacks"] = notes
        stacks = es.enter_context(running(names)) if set(chosen) & set(OURS) else {}
        for name in chosen:
            print(f"bench: {name} ...", file=sys.stderr, flush=True)
            t0 = time.monotonic()
            try:
                if name == "refresh":
                    from bench import refresh

                    results[name] = refresh.run(
                        stacks, rounds=args.rounds, slice_s=args.slice, connections=args.connections
                    )
                    results[name]["skipped"] = dict(n.split(" skipped: ", 1) for n in notes if " skipped: " in n)
                elif name == "login":
                    from bench import login

                    results[name] = login.run(stacks, rounds=max(3, args.rounds - 1), slice_s=args.slice)
                else:
                    results[name] = _other(name)
            except Exception as exc:  # one broken benchmark must not hide the others
                results[name] = {"name": name, "failed": f"{type(exc).__name__}: {exc}"}
                traceback.print_exc()
            results[name]["wall_s"] = round(time.monotonic() - t0, 1)
    doc["machine"]["load_average_at_end"] = machine.load_average()
    doc["wall_s"] = round(time.monotonic() - began, 1)
    doc["results"] = results
    print(report.render(doc))
    if not args.no_save:
        RESULTS.mkdir(exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        text = json.dumps(doc, indent=2) + "\n"
        (RESULTS / f"bench-{stamp}.json").write_text(text)
        if set(chosen) >= {*OURS, *OTHERS}:  # latest.json is always one whole run
            (RESULTS / "latest.json").write_text(text)
            print(f"\nsaved bench/results/bench-{stamp}.json (and latest.json)")
        else:
            print(f"\nsaved bench/results/bench-{stamp}.json (a partial run: latest.json untouched)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
