"""``silentauth storm --live``: the same burst against a running server, over HTTP.

Real time cannot be compressed, so the run is scaled to the server's access
lifetime ``T`` (read from the first login): at most :data:`MAX_SESSIONS`
sessions, a run of ``LIFETIMES`` lifetimes (or ``--hours``, if shorter), the
first half of it (at most four lifetimes, the analogue of the simulator's
first hour at ``T`` = 15 min) excluded, bins and client margin scaled by
``T / 900``. The result is printed next to the in-process simulation at the
same scale (jitter off and on; the server's own ``TTL_JITTER`` is not visible
from outside), so the two can be compared.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass

import httpx

from silentauth.storm.load import LoadStats, Timeline, load_stats

MAX_SESSIONS = 200
LIFETIMES = 8
REFERENCE_TTL = 900.0


@dataclass
class LiveRun:
    """The measured live load and how it was scaled."""

    sessions: int
    access_ttl: int
    margin: float
    bin_seconds: int
    warmup: int
    duration: int
    stats: LoadStats
    refreshes: int
    sessions_lost: int
    burst_seconds: float


async def _drive(url: str, sessions: int, hours: float, username: str, password: str) -> LiveRun:
    from rich.progress import Progress

    token_url = url.rstrip("/") + "/auth/token"
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(timeout=30.0, limits=limits) as http:
        began = time.monotonic()

        async def login() -> dict[str, object]:
            r = await http.post(
                token_url, data={"grant_type": "password", "username": username, "password": password}
            )
            r.raise_for_status()
            body: dict[str, object] = r.json()
            return body

        first = await asyncio.gather(*(login() for _ in range(sessions)))
        burst = time.monotonic() - began
        ttl = max(int(str(g["expires_in"])) for g in first)
        scale = ttl / REFERENCE_TTL
        margin = max(1.0, 60.0 * scale)
        bin_seconds = max(1, round(60 * scale))
        duration = int(min(hours * 3600, LIFETIMES * ttl))
        warmup = int(min(4 * ttl, duration / 2))
        timeline = Timeline(duration)
        lost = 0
        end = began + duration

        with Progress(transient=True) as progress:
            bar = progress.add_task(f"{sessions} sessions, {ttl} s tokens", total=duration)

            async def client(grant: dict[str, object]) -> None:
                nonlocal lost
                token, at = str(grant["refresh_token"]), time.monotonic()
                expires_in = float(str(grant["expires_in"]))
                while True:
                    due = max(at + expires_in - margin, at + 0.2)
                    if due >= end:
                        return
                    await asyncio.sleep(due - time.monotonic())
                    at = time.monotonic()
                    timeline.record(at - began)
                    r = await http.post(token_url, data={"grant_type": "refresh_token", "refresh_token": token})
                    if r.status_code != 200:
                        lost += 1  # logged out while the user is still active
                        return
                    body = r.json()
                    token, expires_in = body["refresh_token"], float(body["expires_in"])

            async def tick() -> None:
                while time.monotonic() < end:
                    progress.update(bar, completed=time.monotonic() - began)
                    await asyncio.sleep(0.25)

            await asyncio.gather(tick(), *(client(g) for g in first))
    stats = load_stats(timeline, warmup, bin_seconds)
    return LiveRun(sessions, ttl, margin, bin_seconds, warmup, duration, stats, timeline.total, lost, burst)


def simulated(run: LiveRun, seed: int) -> dict[str, LoadStats]:
    """The in-process simulation at the live run's scale, jitter off and on."""
    from silentauth.storm.simulate import JITTER_OFF, JITTER_ON, StormConfig, simulate

    config = StormConfig(
        sessions=run.sessions,
        hours=run.duration / 3600,
        seed=seed,
        burst_seconds=max(run.burst_seconds, 0.001),
        margin=run.margin,
        access_ttl=run.access_ttl,
        warmup=run.warmup,
        bin_seconds=run.bin_seconds,
    )
    return {r.scenario.name: r.stats for r in simulate(config, [JITTER_OFF, JITTER_ON])}


def main(args: object) -> int:
    """Drive the server at ``--url`` and print what it sustained (``--json`` too)."""
    from silentauth.storm import report

    url = str(getattr(args, "url", "http://127.0.0.1:8000"))
    sessions = min(int(getattr(args, "sessions", MAX_SESSIONS)), MAX_SESSIONS)
    hours = float(getattr(args, "hours", 1.0))
    username = os.environ.get("SILENTAUTH_STORM_USERNAME", "demo")
    password = os.environ.get("SILENTAUTH_STORM_PASSWORD", "demo")
    try:
        run = asyncio.run(_drive(url, sessions, hours, username, password))
    except (httpx.HTTPError, ValueError) as exc:
        report.error(f"live run against {url} failed: {exc}")
        return 1
    try:
        sim = {name: stats.as_dict() for name, stats in simulated(run, int(getattr(args, "seed", 1))).items()}
    except ValueError:  # too short a run to simulate at this scale
        sim = {}
    out = {
        "live": run.stats.as_dict(),
        "simulated": sim,
        "sessions_lost": run.sessions_lost,
        "sessions": run.sessions,
        "refreshes": run.refreshes,
        "access_ttl": run.access_ttl,
        "margin": run.margin,
        "bin_seconds": run.bin_seconds,
        "warmup": run.warmup,
        "duration": run.duration,
    }
    if getattr(args, "json", False):
        print(json.dumps(out))
    else:
        s = run.stats
        print(
            f"live: {run.sessions} sessions, {run.access_ttl} s tokens, {run.duration} s run "
            f"({run.warmup} s warm-up, {run.bin_seconds} s bins): peak {s.peak:.2f}/s, "
            f"mean {s.mean:.2f}/s, peak/mean {s.peak_to_mean:.2f}, "
            f"{run.refreshes} refreshes, {run.sessions_lost} sessions lost"
        )
        for name, stats in sim.items():
            print(f"simulated at the same scale, {name}: peak {stats['peak']:.2f}/s, "
                  f"mean {stats['mean']:.2f}/s, peak/mean {stats['peak_to_mean']:.2f}")
    return 0 if run.sessions_lost == 0 else 1
