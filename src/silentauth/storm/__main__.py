"""``python -m silentauth.storm``: ``silentauth storm`` with the knobs exposed.

Same flags as the ``storm`` subcommand, plus the burst width, the client
margin, the bin width and the what-if scenarios (client-side jitter, the
proposed first-token spread).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from silentauth.storm.simulate import EXTRA_SCENARIOS, main


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m silentauth.storm", description=__doc__)
    p.add_argument("--sessions", type=int, default=10_000)
    p.add_argument("--hours", type=float, default=4.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--plot", metavar="FILE.png")
    p.add_argument("--json", action="store_true")
    p.add_argument("--live", action="store_true", help="drive a running server over HTTP")
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--burst", type=float, help="seconds over which the logins arrive (60)")
    p.add_argument("--margin", type=float, help="client refreshes this many seconds early (60)")
    p.add_argument("--bin", type=int, help="seconds per load bin (60)")
    p.add_argument(
        "--what-if",
        action="append",
        choices=sorted(EXTRA_SCENARIOS),
        help="add a scenario (repeatable)",
    )
    return p


def run(argv: Sequence[str] | None = None) -> int:
    return main(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(run())
