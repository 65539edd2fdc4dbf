"""The rotation rules, judged on rows (the service and the simulator test them end to end)."""

from __future__ import annotations

import pytest

from silentauth.core.ports import SessionRecord
from silentauth.core.rotation_rules import (
    BURST_GENERATIONS,
    RETRY_WINDOW,
    Verdict,
    judge,
)
from silentauth.errors import ConfigError
from silentauth.settings import Settings

NOW = 1_800_000_000.0
GRACE = 10.0


def row(counter: int, rotated_ago: float) -> SessionRecord:
    return SessionRecord(
        id="s", user_id="u", username="alice", counter=counter, scope="api", client_id="c",
        auth_time=0, created_at=0, last_used_at=NOW - rotated_ago, rotated_at=NOW - rotated_ago,
        idle_expires_at=NOW + 1e6, expires_at=NOW + 1e6,
    )


@pytest.mark.parametrize(
    ("rule", "behind", "ago", "action"),
    [
        ("grace", 1, GRACE, "grace"),
        ("grace", 1, GRACE + 1, "reuse"),
        ("grace", 2, 0, "reuse"),
        ("burst", BURST_GENERATIONS, GRACE, "grace"),
        ("burst", BURST_GENERATIONS + 1, 0, "reuse"),
        ("burst", 1, GRACE + 1, "reuse"),
        ("until_used", 1, 86400, "grace"),
        ("until_used", 2, 0, "reuse"),
        ("late_once", BURST_GENERATIONS, GRACE, "grace"),
        ("late_once", BURST_GENERATIONS + 1, 0, "reuse"),
        ("late_once", 3, RETRY_WINDOW, "grace"),
        ("late_once", 4, RETRY_WINDOW, "reuse"),
        ("late_once", 1, 86400, "late"),
        ("late_once", 2, RETRY_WINDOW + 1, "reuse"),
        ("late_once", 3, RETRY_WINDOW + 1, "reuse"),
    ],
)
def test_verdicts(rule: str, behind: int, ago: float, action: str) -> None:
    verdict = judge(rule, 10, row(10 + behind, ago), NOW, GRACE)  # type: ignore[arg-type]
    assert verdict.action == action


def test_every_honour_hands_out_the_live_token_or_jumps_past_it() -> None:
    assert judge("late_once", 7, row(9, 1), NOW, GRACE).counter == 9
    assert judge("late_once", 8, row(9, 3600), NOW, GRACE).counter == 11


@pytest.mark.parametrize("rule", ["grace", "until_used"])
def test_a_one_behind_honour_hands_out_the_unused_successor(rule: str) -> None:
    # Token 7 was rotated to 8 and 8 was never presented: the retry gets token 8 again.
    assert judge(rule, 7, row(8, 1), NOW, GRACE) == Verdict("grace", 8)  # type: ignore[arg-type]


def test_a_burst_honour_hands_out_the_live_token() -> None:
    # A lock-free client's thread still holding token 5 joins its siblings on token 9.
    assert judge("burst", 5, row(9, 1), NOW, GRACE) == Verdict("grace", 9)


def test_an_unknown_rule_is_refused_at_start() -> None:
    with pytest.raises(ConfigError, match="ROTATION_RULE"):
        Settings(rotation_rule="lenient")
