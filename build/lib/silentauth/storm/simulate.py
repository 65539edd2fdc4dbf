"""The expiry-storm simulator: a login burst, hours of virtual time, real refreshes.

``N`` sessions log in within a short burst (a shift start, a mass re-login
after an outage). Each simulated client then refreshes proactively when its
access token has less than ``margin`` seconds left, optionally earlier by a
random client-side jitter. Every login and every refresh goes through the real
:class:`~silentauth.core.sessions.SessionService` (in-memory SQLite store,
real key ring, real lifetime policy) driven by a :class:`FakeClock`: nothing
sleeps, and one seed fixes every random draw, so the figures are reproducible.

Refresh events are processed in time order from a heap; the clock jumps from
one event to the next. What we judge is the refresh rate after the first hour,
binned per minute (see :func:`~silentauth.storm.load.load_stats`).
"""

from __future__ import annotations

import asyncio
import heapq
import multiprocessing
import os
import random
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace

from silentauth.clock import FakeClock
from silentauth.core.assembly import TokenCore
from silentauth.core.events import LoginOutcome, RefreshOutcome, RevokeReason
from silentauth.core.passwords import Passwords
from silentauth.errors import OAuthError
from silentauth.settings import Settings
from silentauth.stores.sqlite import SQLiteStore
from silentauth.storm.load import LoadStats, Timeline, load_stats

START = 1_800_000_000.0
# A fixed, obviously non-production secret: simulated tokens never leave the process.
SIM_SECRET = "silentauth-storm-simulator-not-a-secret-0123456789"  # noqa: S105
USER = "storm"
# Session-hours above which scenarios run in parallel processes.
PARALLEL_ABOVE = 5_000


@dataclass(frozen=True)
class Scenario:
    """One way of running the same burst.

    ``ttl_jitter`` and ``first_token_spread`` are the server's settings of those
    names; ``client_jitter`` adds a random ``U(0, client_jitter)`` seconds to
    each client's refresh margin.
    """

    name: str
    label: str
    ttl_jitter: float
    client_jitter: float = 0.0
    first_token_spread: float = 0.0


JITTER_OFF = Scenario("jitter_off", "jitter off (TTL_JITTER=0, FIRST_TOKEN_SPREAD=0)", 0.0)
JITTER_ON = Scenario("jitter_on", "defaults (TTL_JITTER=0.1, FIRST_TOKEN_SPREAD=0.9)", 0.1, 0.0, 0.9)
PER_TOKEN_ONLY = Scenario("per_token_only", "TTL_JITTER=0.1 alone (FIRST_TOKEN_SPREAD=0)", 0.1)
CLIENT_JITTER = Scenario("client_jitter", "TTL_JITTER=0.1 alone + client margin +U(0,120 s)", 0.1, 120.0)
EXTRA_SCENARIOS = {s.name: s for s in (PER_TOKEN_ONLY, CLIENT_JITTER)}


@dataclass(frozen=True)
class StormConfig:
    """The burst and the clients; durations in seconds unless named otherwise."""

    sessions: int = 10_000
    hours: float = 4.0
    seed: int = 1
    burst_seconds: float = 60.0
    margin: float = 60.0
    access_ttl: int = 900
    warmup: int = 3600
    bin_seconds: int = 60

    def __post_init__(self) -> None:
        if self.sessions < 1:
            raise ValueError("sessions must be at least 1")
        if self.hours * 3600 < self.warmup + self.bin_seconds:
            raise ValueError(f"hours must exceed the warm-up ({self.warmup} s) plus one bin")
        if not 0 <= self.margin < self.access_ttl:
            raise ValueError("margin must be shorter than the access-token lifetime")

    @property
    def duration(self) -> int:
        return int(self.hours * 3600)


@dataclass
class ScenarioResult:
    """What one scenario produced; ``timeline`` feeds the plot."""

    scenario: Scenario
    timeline: Timeline
    stats: LoadStats
    logins: int
    refreshes: int
    sessions_lost: int
    outcomes: dict[str, int] = field(default_factory=dict)
    wall_seconds: float = 0.0


class OutcomeCounts:
    """The service's events, counted as ``"kind:outcome"`` (a :class:`SessionEvents`)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def _count(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1

    def on_login(self, outcome: LoginOutcome) -> None:
        """Count ``login:<outcome>``."""
        self._count(f"login:{outcome}")

    def on_refresh(self, outcome: RefreshOutcome) -> None:
        """Count ``refresh:<outcome>``."""
        self._count(f"refresh:{outcome}")

    def on_revoke(self, reason: RevokeReason) -> None:
        """Count ``revoked:<reason>``."""
        self._count(f"revoked:{reason}")

    def on_renewal(self) -> None:
        """Count ``renewal:ok``."""
        self._count("renewal:ok")

    def on_batch(self, size: int) -> None:
        """Not counted: the simulator refreshes one at a time."""


async def _core(config: StormConfig, scenario: Scenario, clock: FakeClock, events: OutcomeCounts) -> TokenCore:
    settings = Settings(
        database_url="sqlite:///:memory:",
        secret_key=SIM_SECRET,
        access_ttl=config.access_ttl,
        ttl_jitter=scenario.ttl_jitter,
        first_token_spread=scenario.first_token_spread,
    )
    rng = random.Random(config.seed)  # noqa: S311 - jitter is load shaping, not secrecy
    # Argon2id at its minimum cost: logins are part of the burst, not what we measure.
    passwords = Passwords(time_cost=1, memory_cost=8, parallelism=1)
    core = TokenCore(
        settings=settings,
        store=SQLiteStore(settings.database_url),
        clock=clock,
        passwords=passwords,
        rng=rng,
        events=events,
    )
    await core.store.open()
    await core.start()
    await core.users.ensure(USER, USER)
    return core


async def run_scenario(config: StormConfig, scenario: Scenario) -> ScenarioResult:
    """Log ``config.sessions`` in, then let every client refresh until the end."""
    began = time.perf_counter()
    clock = FakeClock(START)
    events = OutcomeCounts()
    core = await _core(config, scenario, clock, events)
    service = core.service
    client_rng = random.Random(config.seed + 1)  # noqa: S311
    timeline = Timeline(config.duration)
    offsets = sorted(client_rng.uniform(0.0, config.burst_seconds) for _ in range(config.sessions))
    tokens: list[str] = []
    due: list[tuple[float, int]] = []
    end = START + config.duration

    def schedule(i: int, now: float, expires_in: int) -> None:
        extra = client_rng.uniform(0.0, scenario.client_jitter) if scenario.client_jitter else 0.0
        at = max(now + expires_in - config.margin - extra, now + 1.0)
        if at < end:
            heapq.heappush(due, (at, i))

    try:
        for i, offset in enumerate(offsets):
            clock.set(START + offset)
            grant = await service.login(USER, USER, client_id="storm", ip=f"10.0.{i % 250}.1")
            tokens.append(grant.refresh_token)
            schedule(i, clock(), grant.expires_in)
        refreshes = lost = 0
        while due:
            at, i = heapq.heappop(due)
            clock.set(at)
            timeline.record(at - START)
            refreshes += 1
            try:
                grant = await service.refresh(tokens[i], ip=f"10.0.{i % 250}.1")
            except OAuthError:
                lost += 1  # the session is dead while its user is still active
                continue
            tokens[i] = grant.refresh_token
            schedule(i, at, grant.expires_in)
    finally:
        await core.store.close()
    stats = load_stats(timeline, config.warmup, config.bin_seconds)
    wall = time.perf_counter() - began
    return ScenarioResult(scenario, timeline, stats, len(offsets), refreshes, lost, events.counts, wall)


def _run_one(config: StormConfig, scenario: Scenario) -> ScenarioResult:
    return asyncio.run(run_scenario(config, scenario))


def simulate(config: StormConfig, scenarios: list[Scenario], processes: int | None = None) -> list[ScenarioResult]:
    """Run each scenario on its own fresh service and clock, same seed.

    Scenarios are independent, so large runs spread them over processes (one
    per core); every scenario's random draws come from its own seeded
    generators, so the figures do not depend on how the runs are spread.
    """
    if processes is None:
        big = config.sessions * config.hours >= PARALLEL_ABOVE
        processes = min(len(scenarios), os.cpu_count() or 1) if big else 1
    if processes <= 1:
        return [_run_one(config, s) for s in scenarios]
    ctx = multiprocessing.get_context("spawn")  # no fork of a threaded parent
    with ProcessPoolExecutor(max_workers=processes, mp_context=ctx) as pool:
        return list(pool.map(_run_one, [config] * len(scenarios), scenarios))


def _config(args: object) -> StormConfig:
    base = StormConfig()
    values = {
        "sessions": getattr(args, "sessions", None),
        "hours": getattr(args, "hours", None),
        "seed": getattr(args, "seed", None),
        "burst_seconds": getattr(args, "burst", None),
        "margin": getattr(args, "margin", None),
        "bin_seconds": getattr(args, "bin", None),
    }
    return replace(base, **{k: v for k, v in values.items() if v is not None})


def main(args: object) -> int:
    """``silentauth storm``: simulate (or ``--live``: drive a server), then report."""
    from silentauth.storm import report

    if getattr(args, "live", False):
        from silentauth.storm.live import main as live_main

        return live_main(args)
    try:
        config = _config(args)
    except ValueError as exc:
        report.error(str(exc))
        return 2
    scenarios = [JITTER_OFF, JITTER_ON]
    scenarios += [EXTRA_SCENARIOS[name] for name in getattr(args, "what_if", None) or ()]
    results = simulate(config, scenarios)
    plot_path = getattr(args, "plot", None)
    if plot_path:
        from silentauth.storm.plot import plot

        plot(results, config, plot_path)
    if getattr(args, "json", False):
        report.print_json(results)
    else:
        report.print_table(results, config, plot_path)
    return 0
