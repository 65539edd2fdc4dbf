"""The storm simulator: reproducible, jitter flattens the load, nobody is logged out."""

from __future__ import annotations

import pytest

from silentauth.storm import (
    JITTER_OFF,
    JITTER_ON,
    StormConfig,
    Timeline,
    load_stats,
    simulate,
)
from silentauth.storm.simulate import ScenarioResult

SMALL = StormConfig(sessions=300, hours=2.0, seed=7)


@pytest.fixture(scope="module")
def small_run() -> list[ScenarioResult]:
    return simulate(SMALL, [JITTER_OFF, JITTER_ON])


def test_same_seed_gives_identical_figures(small_run: list[ScenarioResult]) -> None:
    again = simulate(SMALL, [JITTER_OFF, JITTER_ON])
    assert [r.stats for r in again] == [r.stats for r in small_run]
    assert [r.timeline.counts for r in again] == [r.timeline.counts for r in small_run]


def test_other_seed_gives_other_jittered_timeline(small_run: list[ScenarioResult]) -> None:
    (other,) = simulate(StormConfig(sessions=300, hours=2.0, seed=8), [JITTER_ON])
    assert other.timeline.counts != small_run[1].timeline.counts


def test_jitter_lowers_the_peak_of_the_refresh_storm(small_run: list[ScenarioResult]) -> None:
    off, on = small_run
    assert on.stats.peak < off.stats.peak / 2
    assert on.stats.peak_to_mean < off.stats.peak_to_mean / 2
    # Without jitter the whole burst comes back every cycle, one bin at a time.
    assert off.stats.peak == pytest.approx(SMALL.sessions / SMALL.bin_seconds)


def test_every_refresh_goes_through_the_service_and_no_session_is_lost(
    small_run: list[ScenarioResult],
) -> None:
    for r in small_run:
        assert r.sessions_lost == 0
        assert r.logins == SMALL.sessions
        assert r.outcomes["login:ok"] == SMALL.sessions
        assert r.outcomes["refresh:rotated"] == r.refreshes == r.timeline.total
        # Each session refreshes about once per (lifetime - margin) for two hours.
        assert r.refreshes >= SMALL.sessions * 7


def test_load_stats_exclude_the_warmup_and_average_over_bins() -> None:
    t = Timeline(300)
    for s in (5, 5, 5, 150, 250):  # a spike in the warm-up must not count
        t.record(s)
    stats = load_stats(t, warmup=100, bin_seconds=100)
    assert stats.peak == pytest.approx(0.01)
    assert stats.mean == pytest.approx(0.01)
    assert stats.peak_to_mean == pytest.approx(1.0)


def test_a_run_no_longer_than_the_warmup_is_refused() -> None:
    with pytest.raises(ValueError, match="warm-up"):
        StormConfig(hours=1.0)
