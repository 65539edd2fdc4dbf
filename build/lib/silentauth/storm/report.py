"""How ``silentauth storm`` prints: JSON for scripts (a stable shape), or a table for people."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from silentauth.storm.simulate import ScenarioResult, StormConfig


def as_json(results: list[ScenarioResult]) -> dict[str, Any]:
    """``{"jitter_off": {...}, "jitter_on": {...}, "sessions_lost": n}`` (``--json``).

    Extra scenarios (``--what-if``) are added under their own names; the
    three keys above are always present, so scripts can rely on them.
    """
    out: dict[str, Any] = {r.scenario.name: r.stats.as_dict() for r in results}
    out["sessions_lost"] = sum(r.sessions_lost for r in results)
    return out


def print_json(results: list[ScenarioResult]) -> None:
    print(json.dumps(as_json(results)))


def error(message: str) -> None:
    print(f"silentauth storm: {message}", file=sys.stderr)


def print_table(results: list[ScenarioResult], config: StormConfig, plot_path: str | None) -> None:
    """A rich table: one row per scenario, the goal stated under it."""
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=(
            f"Expiry storm: {config.sessions} logins within {config.burst_seconds:g} s, "
            f"{config.hours:g} h virtual, access TTL {config.access_ttl} s, "
            f"client margin {config.margin:g} s, seed {config.seed}"
        )
    )
    for name in ("scenario", "peak /s", "mean /s", "peak/mean", "refreshes", "lost", "wall s"):
        table.add_column(name, justify="left" if name == "scenario" else "right")
    for r in results:
        table.add_row(
            r.scenario.label,
            f"{r.stats.peak:.1f}",
            f"{r.stats.mean:.2f}",
            f"{r.stats.peak_to_mean:.2f}",
            str(r.refreshes),
            str(r.sessions_lost),
            f"{r.wall_seconds:.1f}",
        )
    console = Console(width=None if sys.stdout.isatty() else 110)
    console.print(table)
    console.print(
        f"Refresh rate per {config.bin_seconds} s bin, after the first "
        f"{config.warmup // 60} min. Goal: peak/mean <= 1.5 with the default jitter."
    )
    if plot_path:
        console.print(f"plot written to {plot_path}")
