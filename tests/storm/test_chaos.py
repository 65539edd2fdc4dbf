"""The fault-injection simulator, at small sizes: deterministic, and it tells the rules apart."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from silentauth.storm.chaos import ChaosConfig, run_rule
from silentauth.storm.chaos_report import run
from tests.conftest import LiveServer

SMALL = ChaosConfig(clients=400, thieves=40, hours=8.0, seed=3)


def test_late_once_without_keys_logs_nobody_out_and_catches_every_catchable_thief() -> None:
    from dataclasses import replace

    r = run_rule(replace(SMALL, keys=False), "late_once")
    assert r.false_logouts == 0, r.false_by_kind
    assert r.detectable > 0 and r.detected == r.detectable
    assert r.outcomes.get("refresh:grace", 0) > 0  # the faults were really injected


def test_the_default_rule_with_keyed_retries_logs_nobody_out_and_catches_every_catchable_thief() -> None:
    from dataclasses import replace

    keyed, keyless = run_rule(SMALL, "burst"), run_rule(replace(SMALL, keys=False), "burst")
    assert keyed.keys and not keyless.keys
    assert keyed.false_logouts == 0, keyed.false_by_kind
    assert keyed.detectable > 0 and keyed.detected == keyed.detectable
    assert keyed.outcomes.get("refresh:retried", 0) > 0  # the lost answers were really retried
    # The same faults without keys: the lost answers retried after the grace window are "thefts".
    assert keyless.false_logouts > 0 and keyless.outcomes.get("refresh:retried", 0) == 0


def test_the_command_runs_each_rule_with_and_without_keys(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--clients", "60", "--thieves", "5", "--hours", "2", "--rule", "burst", "--keys", "both", "--json"]) == 0
    rules = json.loads(capsys.readouterr().out)["rules"]
    assert [(r["rule"], r["keys"], r["label"]) for r in rules] == [("burst", True, "burst+keys"), ("burst", False, "burst")]


def test_the_grace_rule_logs_out_clients_whose_answers_were_lost() -> None:
    from dataclasses import replace

    r = run_rule(replace(SMALL, keys=False), "grace")
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


def test_chaos_live_over_http_keyed_clients_survive_lost_answers_and_thieves_are_caught(
    live_server_factory: Callable[..., LiveServer], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real server with a 1 s REUSE_GRACE, so a 1.5 s "sleep" after a lost answer is past it.
    live = live_server_factory(reuse_grace=1.0)
    monkeypatch.setenv("SILENTAUTH_STORM_USERNAME", "alice")
    monkeypatch.setenv("SILENTAUTH_STORM_PASSWORD", "secret")
    argv = ["--live", live.url, "--clients", "12", "--thieves", "2", "--sleep", "1.5", "--drop", "0.5"]
    assert run([*argv, "--keys", "both", "--json"]) == 0
    keyed, keyless = json.loads(capsys.readouterr().out)["live"]
    assert keyed["keys"] and keyed["answers_lost"] > 0 and keyed["false_logouts"] == 0
    assert keyed["thefts"] == 2 and keyed["thefts_detected"] == 2
    assert live.metric("silentauth_refresh_total", outcome="retried") > 0  # the retries were proven by key
    # Stock clients without keys, the same faults: logged out as thieves.
    assert keyless["answers_lost"] > 0 and keyless["false_logouts"] > 0
