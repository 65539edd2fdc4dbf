"""``silentauth storm``: the expiry-storm simulator, its plot and its live check.

:func:`~silentauth.storm.simulate.simulate` runs a login burst against the real
session service on a virtual clock; :mod:`silentauth.storm.live` confirms the
shape against a running server over HTTP.
"""

from __future__ import annotations

from silentauth.storm.load import LoadStats, Timeline, load_stats
from silentauth.storm.simulate import (
    JITTER_OFF,
    JITTER_ON,
    Scenario,
    ScenarioResult,
    StormConfig,
    main,
    run_scenario,
    simulate,
)

__all__ = [
    "JITTER_OFF",
    "JITTER_ON",
    "LoadStats",
    "Scenario",
    "ScenarioResult",
    "StormConfig",
    "Timeline",
    "load_stats",
    "main",
    "run_scenario",
    "simulate",
]
