"""Login: password logins per second, silentauth vs the peers, same run.

All three verify Argon2id at the same cost (silentauth's default: t=2,
m=19 MiB, p=1; see :mod:`bench.peers`), so the figure compares the stacks
around the hash: silentauth runs Argon2 in a thread pool, the WSGI peers in
granian's blocking threads; all on the one CPU the server is pinned to.
"""

from __future__ import annotations

import contextlib
from typing import Any

from bench.measure import drive, ratio, summary
from bench.peers import ARGON2_MEMORY_KIB, ARGON2_PARALLELISM, ARGON2_TIME_COST
from bench.refresh import PEERS
from bench.servers import NODE_STACKS, Stack, running

ARGON2 = f"argon2id t={ARGON2_TIME_COST} m={ARGON2_MEMORY_KIB}KiB p={ARGON2_PARALLELISM}"


def measure(
    stacks: dict[str, Stack], *, rounds: int = 3, slice_s: float = 1.5, connections: int = 8
) -> dict[str, Any]:
    # oidc-provider's sessions come from authorization-code flows, not a password form.
    with_password = [s for s in stacks.values() if s.name not in NODE_STACKS]
    results = drive([(s, "login") for s in with_password], connections=connections, rounds=rounds, slice_s=slice_s)
    out = {r["stack"]: {"served_by": stacks[r["stack"]].served_by, "login": summary(r)} for r in results}
    ours = out.get("silentauth", {}).get("login", {})
    return {
        "name": "login",
        "unit": "logins/s",
        "password_hash": ARGON2,
        "rounds": rounds,
        "slice_s": slice_s,
        "connections": connections,
        "stacks": out,
        "ratios": {
            f"silentauth/{p}": {
                "rate": ratio(ours.get("median"), v["login"]["median"]),
                "per_core": ratio(ours.get("per_core"), v["login"]["per_core"]),
            }
            for p, v in out.items()
            if p in PEERS
        },
    }


def run(stacks: dict[str, Stack] | None = None, **kwargs: Any) -> dict[str, Any]:
    """Start the stacks unless given, measure, return the figures (prints nothing)."""
    with contextlib.ExitStack() as es:
        if stacks is None:
            stacks = es.enter_context(running())
        return measure(stacks, **kwargs)
