"""One load-generator process drives several (stack, mode) targets in turn."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from typing import Any

from bench.servers import LOADGEN_CPU, ROOT, Stack, _env, pin


def drive(
    targets: list[tuple[Stack, str]], *, connections: int, rounds: int, slice_s: float, warmup: float = 0.5
) -> list[dict[str, Any]]:
    """Run ``bench.loadgen`` in its own process (pinned to the load CPU).

    Each round gives every target one slice of ``slice_s`` seconds; the
    result per target holds one rate and one CPU cost per round.
    """
    spec = {
        "targets": [{"stack": s.name, "port": s.port, "mode": mode, "pid": s.pid} for s, mode in targets],
        "connections": connections,
        "rounds": rounds,
        "slice": slice_s,
        "warmup": warmup,
    }
    proc = subprocess.run(
        [sys.executable, "-m", "bench.loadgen", json.dumps(spec)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_env({}),
        timeout=120 + len(targets) * (rounds * slice_s + warmup) * 2,
        preexec_fn=pin(LOADGEN_CPU),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"load generator failed:\n{proc.stderr[-2000:]}")
    results: list[dict[str, Any]] = json.loads(proc.stdout)["targets"]
    return results


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """Median rate with its spread over rounds; server CPU per request; p50/p99."""
    rates = result["rps"]
    med = statistics.median(rates)
    cpu = result["cpu_us_per_request"]
    cpu_med = statistics.median(cpu) if cpu else None
    return {
        "median": round(med, 1),
        "min": round(min(rates), 1),
        "max": round(max(rates), 1),
        "spread_pct": round(100 * (max(rates) - min(rates)) / med, 1) if med else None,
        "cpu_us": round(cpu_med, 1) if cpu_med else None,
        # What one fully busy core would sustain at the measured CPU cost.
        "per_core": round(1e6 / cpu_med, 1) if cpu_med else None,
        "p50_ms": round(result["p50_ms"], 2) if result["p50_ms"] is not None else None,
        "p99_ms": round(result["p99_ms"], 2) if result["p99_ms"] is not None else None,
        "errors": sum(result["errors"].values()),
        "rounds": [round(x, 1) for x in rates],
    }


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None
