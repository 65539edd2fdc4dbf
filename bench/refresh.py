"""Refresh endpoint: silentauth vs its peers (Python and Node.js), same run.

Every stack's no-op baseline and refresh load are driven by one load
generator in short interleaved slices, round after round, so drift on a
shared machine hits all of them alike. Two figures per target: the rate it
sustained (noisy when neighbours are busy) and the server CPU per request,
whose inverse is what one core can sustain (robust to neighbours).
The goal: silentauth >= 3x the best peer with one worker process,
the best being node oidc-provider with opaque tokens in memory, while
silentauth commits to SQLite before answering and signs ES256.
"""

from __future__ import annotations

import contextlib
from typing import Any

from bench.measure import drive, ratio, summary
from bench.servers import Stack, running

GOAL = 3.0
# silentauth-granian is ours, not a peer.
PEERS = ("simplejwt", "flask-jwt-extended", "django-oauth-toolkit", "oidc-provider", "oidc-provider-idtoken")


def measure(
    stacks: dict[str, Stack], *, rounds: int = 4, slice_s: float = 1.5, connections: int = 32
) -> dict[str, Any]:
    targets = [(stack, mode) for stack in stacks.values() for mode in ("noop", "refresh")]
    results = drive(targets, connections=connections, rounds=rounds, slice_s=slice_s)
    out: dict[str, Any] = {name: {"served_by": s.served_by} for name, s in stacks.items()}
    for r in results:
        out[r["stack"]][r["mode"]] = summary(r)
    for row in out.values():
        row["refresh_over_noop"] = ratio(row["refresh"]["median"], row["noop"]["median"])
        row["refresh_over_noop_per_core"] = ratio(row["refresh"]["per_core"], row["noop"]["per_core"])
    ours = out.get("silentauth", {}).get("refresh", {})
    peers = [p for p in PEERS if p in out]
    ratios = {
        f"silentauth/{p}": {
            "rate": ratio(ours.get("median"), out[p]["refresh"]["median"]),
            "per_core": ratio(ours.get("per_core"), out[p]["refresh"]["per_core"]),
        }
        for p in peers
    }
    best = max((out[p]["refresh"]["median"] for p in peers), default=0.0)
    best_core = max((out[p]["refresh"]["per_core"] or 0.0 for p in peers), default=0.0)
    return {
        "name": "refresh",
        "unit": "refreshes/s",
        "rounds": rounds,
        "slice_s": slice_s,
        "connections": connections,
        "stacks": out,
        "ratios": ratios,
        "vs_best_peer": {"rate": ratio(ours.get("median"), best), "per_core": ratio(ours.get("per_core"), best_core)},
        "goal": GOAL,
        "best_peer": max(peers, key=lambda p: out[p]["refresh"]["per_core"] or 0.0, default=None),
        # Judged per core: the rate of a server pinned to a core it shares with
        # other work is noise; its CPU per request is not.
        "ok": bool(best_core and (ours.get("per_core") or 0.0) / best_core >= GOAL),
    }


def run(stacks: dict[str, Stack] | None = None, **kwargs: Any) -> dict[str, Any]:
    """Start the stacks unless given, measure, return the figures (prints nothing)."""
    with contextlib.ExitStack() as es:
        if stacks is None:
            stacks = es.enter_context(running())
        return measure(stacks, **kwargs)
