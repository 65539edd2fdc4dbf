"""The storm's command-line arguments, shared by ``silentauth storm`` and
``python -m silentauth.storm``, so that the simulator needs nothing from the CLI."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``storm``, added to ``p``."""
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
        choices=["client_jitter", "per_token_only"],
        help="add a comparison scenario (repeatable)",
    )


def run(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the storm; the exit status."""
    from silentauth.storm.simulate import main

    p = argparse.ArgumentParser(prog="python -m silentauth.storm", description="Simulate an expiry storm.")
    add_arguments(p)
    try:
        return main(p.parse_args(argv))
    except KeyboardInterrupt:
        return 130
