"""The fault-injection simulator, at small sizes: deterministic, and it tells the rules apart."""

from __future__ import annotations

import json

import pytest

from silentauth.storm.chaos import ChaosConfig, run_rule
from silentauth.storm.chaos_report import run

SMALL = ChaosConfig(clients=400, thieves=40, hours=8.0, seed=3)


def test_the_default_rule_logs_nobody_out_and_catches_every_catchable_thief() -> None:
    r = run_rule(SMALL, "late_once")
    assert r.false_logouts == 0, r.false_by_kind
    assert r.detectable > 0 and r.detected == r.detectable
    assert r.outcomes.get("refresh:grace", 0) > 0  # the faults were really injected


def test_the_grace_rule_logs_out_clients_whose_answers_were_lost() -> None:
    r = run_rule(SMALL, "grace")
    assert r.false_logouts > 0 and r.false_by_kind.get("mobile", 0) > 0


def test_a_run_is_deterministic() -> None:
    small = ChaosConfig(clients=100, thieves=10, hours=3.0, seed=5)
    a, b = run_rule(small, "until_used"), run_rule(small, "until_used")
    assert (a.refreshes, a.false_logouts, a.detect_seconds) == (b.refreshes, b.false_logouts, b.detect_seconds)


def test_the_command_prints_json_for_every_rule(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--clients", "60", "--thieves", "5", "--hours", "2", "--json"]) == 0
    rules = json.loads(capsys.readouterr().out)["rules"]
    assert [r["rule"] for r in rules] == ["grace", "burst", "until_used", "late_once"]
    assert all({"false_logouts", "detected_pct", "seconds_to_detection"} <= r.keys() for r in rules)


def test_bad_sizes_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--clients", "5", "--thieves", "9"]) == 2
    assert "thieves" in capsys.readouterr().err
