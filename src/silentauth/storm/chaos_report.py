"""``silentauth chaos``: arguments, the table, the JSON and the plot per rotation rule."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, replace
from typing import Any

from silentauth.core.rotation_rules import RULES
from silentauth.storm.chaos import ChaosConfig, RuleResult, chaos, quantiles

COLORS = {"grace": "#d62728", "burst": "#9467bd", "until_used": "#ff7f0e", "late_once": "#2ca02c"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``chaos``, added to ``p``."""
    p.add_argument("--clients", type=int, help="10000 (--live: 50)")
    p.add_argument("--thieves", type=int, help="100 (--live: 5)")
    p.add_argument("--hours", type=float, default=24.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--drop", type=float, help="share of refresh answers lost after commit (0.02)")
    p.add_argument("--kill", type=float, help="share of app suspensions that kill a refresh (0.1)")
    p.add_argument("--rule", action="append", choices=RULES, help="only these rules (repeatable)")
    p.add_argument(
        "--keys",
        choices=("on", "off", "both"),
        default="on",
        help="our clients send an Idempotency-Key with each refresh (on), not (off), or run both",
    )
    p.add_argument("--json", action="store_true")
    p.add_argument("--plot", metavar="FILE.png")
    p.add_argument("--live", metavar="URL", help="drive a running server over HTTP instead (small sizes, real time)")
    p.add_argument("--rounds", type=int, default=3, help="--live: refreshes per client (3)")
    p.add_argument("--sleep", type=float, default=12.0, help="--live: seconds asleep after a lost answer (12)")


def summary(r: RuleResult) -> dict[str, Any]:
    """The figures of one rule as JSON-ready values."""
    return {
        "rule": r.rule,
        "keys": r.keys,
        "label": r.label,
        "refreshes": r.refreshes,
        "false_logouts": r.false_logouts,
        "false_logouts_by_client": r.false_by_kind,
        "expired_logouts": r.expired_logouts,
        "thefts": r.thieves,
        "thefts_live": r.thefts_live,
        "thefts_detectable": r.detectable,
        "thefts_detected": r.detected,
        "detected_pct": round(r.detected_pct, 2),
        "seconds_to_detection": quantiles(r.detect_seconds),
        "thief_access_seconds": quantiles(r.thief_seconds),
        "outcomes": r.outcomes,
        "wall_seconds": round(r.wall_seconds, 1),
    }


def _h(v: float | None) -> str:
    return "-" if v is None else f"{v / 3600:.1f} h" if v >= 3600 else f"{v:.0f} s"


def print_table(results: list[RuleResult], config: ChaosConfig) -> None:
    """The human-readable comparison."""
    print(f"{config.clients} clients, {config.thieves} thieves, {config.hours:g} h, seed {config.seed}")
    print(f"{'rule':<16} {'false logouts':>13} {'detected':>16} {'to detection (median/p99/max)':>32} {'thief held (median/p99/max)':>30}")
    for r in results:
        d, t = quantiles(r.detect_seconds), quantiles(r.thief_seconds)
        det = f"{r.detected}/{r.detectable} {r.detected_pct:.1f}%"
        print(
            f"{r.label:<16} {r.false_logouts:>13} {det:>16} "
            f"{_h(d['median']) + ' / ' + _h(d['p99']) + ' / ' + _h(d['max']):>32} "
            f"{_h(t['median']) + ' / ' + _h(t['p99']) + ' / ' + _h(t['max']):>30}"
        )


def plot(results: list[RuleResult], path: str) -> None:
    """Bars of false logouts and detection, and the thieves' holding times."""
    import matplotlib

    matplotlib.use("Agg")  # files only: never needs a display
    import matplotlib.pyplot as plt

    fig, (a, b, c) = plt.subplots(1, 3, figsize=(13, 4.2), dpi=110)
    names = [r.label for r in results]
    colors = [COLORS.get(r.rule, "#777777") for r in results]
    # Without keys: the same colour, hatched.
    hatches = ["" if r.keys else "//" for r in results]
    a.bar(names, [r.false_logouts for r in results], color=colors, hatch=hatches)
    a.tick_params(axis="x", labelrotation=60)
    a.set_title("false logouts (goal 0)")
    b.bar(names, [r.detected_pct for r in results], color=colors, hatch=hatches)
    b.tick_params(axis="x", labelrotation=60)
    b.set_ylim(0, 105)
    b.set_title("thefts detected, % (goal 100)")
    for r, color in zip(results, colors, strict=True):
        held = sorted(s / 3600 for s in r.thief_seconds)
        style = "-" if r.keys else ":"
        c.plot(held, [(i + 1) / max(1, len(held)) for i in range(len(held))], style, color=color, label=r.label)
    c.set_xlabel("hours a thief held a working access token")
    c.set_ylabel("share of thefts")
    c.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(args: argparse.Namespace) -> int:
    """Run every rule with the same seed, then print and plot (or drive ``--live``)."""
    if args.live:
        from silentauth.storm import chaos_live

        # Real time: the in-process defaults (10,000 clients) are far beyond it.
        live = argparse.Namespace(
            **{**vars(args), "url": args.live, "clients": args.clients or 50, "thieves": args.thieves or 5}
        )
        return chaos_live.main(live)
    values = {"drop": args.drop, "kill": args.kill}
    try:
        config = replace(
            ChaosConfig(
                clients=10_000 if args.clients is None else args.clients,
                thieves=100 if args.thieves is None else args.thieves,
                hours=args.hours,
                seed=args.seed,
            ),
            **{k: v for k, v in values.items() if v is not None},
        )
    except ValueError as exc:
        print(f"silentauth chaos: {exc}", file=sys.stderr)
        return 2
    rules = tuple(args.rule) if args.rule else RULES
    big = config.clients >= 2000
    keys = {"on": (True,), "off": (False,), "both": (True, False)}[args.keys]
    runs = len(rules) * len(keys)
    results = chaos(config, rules, processes=min(runs, os.cpu_count() or 1) if big else 1, keys=keys)
    if args.plot:
        plot(results, args.plot)
    if args.json:
        print(json.dumps({"config": asdict(config), "rules": [summary(r) for r in results]}, indent=2))
    else:
        print_table(results, config)
    return 0


def run(argv: Sequence[str] | None = None) -> int:
    """``python -m silentauth.storm.chaos_report``."""
    p = argparse.ArgumentParser(prog="silentauth chaos", description="Measure rotation rules under faults and theft.")
    add_arguments(p)
    try:
        return main(p.parse_args(argv))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(run())
