"""The application's token hooks: what they may answer, and what a failing one becomes.

The rules are checked on their own; :class:`TokenHooks` runs on a fake
monotonic clock, so the pacing of its log lines is exact. Only the deadline
uses real time (a hook that hangs for real).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio
import pytest

from silentauth.clock import FakeClock
from silentauth.core.hooks import (
    DEFAULT_LIFETIMES,
    LOG_EVERY,
    RESERVED_CLAIMS,
    Lifetimes,
    TokenContext,
    TokenHooks,
    as_hook,
    check_claims,
    check_lifetimes,
)
from silentauth.errors import ClaimsUnavailable, ConfigError

pytestmark = pytest.mark.anyio

LOGIN = TokenContext("u-1", "alice", "native", "profile", "s-1", "login")
REFRESH = TokenContext("u-2", "bob", "browser", "", "s-2", "refresh")


def hook_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "silentauth.hooks"]


# --- the claims rule (also the rule for claims given to a new session) ---


def test_claims_up_to_the_byte_limit_are_taken_as_a_plain_dict() -> None:
    value = {"roles": ["admin"], "note": "x" * 20}
    size = len('{"roles":["admin"],"note":""}') + 20
    claims = check_claims(value, size)
    assert claims == value and type(claims) is dict


@pytest.mark.parametrize(
    "value, why",
    [
        (["roles"], "list, not a mapping"),
        ({1: "a", 2: "b"}, "claim names must be strings, got 1"),  # JSON would quietly make them "1", "2"
        ({"sub": "someone-else", "aud": "x", "roles": []}, "reserved claims ['aud', 'sub']"),
        ({"ratio": float("nan")}, "a value that is not JSON: Out of range float values are not JSON compliant"),
        ({"when": object}, "a value that is not JSON: Object of type type is not JSON serializable"),
        ({"note": "x" * 20}, "31 bytes of claims, more than CLAIMS_MAX_BYTES=30"),
    ],
)
def test_claims_that_break_a_rule_say_which(value: object, why: str) -> None:
    with pytest.raises(ValueError) as err:
        check_claims(value, 30)
    assert str(err.value).startswith(why)


def test_every_registered_claim_silentauth_sets_is_reserved() -> None:
    for name in RESERVED_CLAIMS:
        with pytest.raises(ValueError, match="reserved claims"):
            check_claims({name: "x"}, 2048)


# --- the lifetimes rule ---


def test_no_answer_keeps_the_configured_lifetimes() -> None:
    assert check_lifetimes(None) is DEFAULT_LIFETIMES
    answer = Lifetimes(access_ttl=1, session_max_age=1, refresh=False)
    assert check_lifetimes(answer) is answer


@pytest.mark.parametrize(
    "value, why",
    [
        ({"access_ttl": 60}, "returned dict, not Lifetimes"),
        (Lifetimes(access_ttl=0), "access_ttl=0 is not a whole number of seconds >= 1"),
        (Lifetimes(access_ttl=True), "access_ttl=True is not a whole number of seconds >= 1"),
        (Lifetimes(access_ttl=1.5), "access_ttl=1.5 is not a whole number of seconds >= 1"),  # type: ignore[arg-type]
        (Lifetimes(session_max_age=-5), "session_max_age=-5 is not a whole number of seconds >= 1"),
        (Lifetimes(session_max_age="60"), "session_max_age='60' is not a whole number of seconds >= 1"),  # type: ignore[arg-type]
    ],
)
def test_lifetimes_that_break_a_rule_say_which(value: object, why: str) -> None:
    with pytest.raises(ValueError) as err:
        check_lifetimes(value)
    assert str(err.value) == why


def test_a_hook_setting_must_name_a_callable() -> None:
    async def claims(context: TokenContext) -> Mapping[str, Any]:
        return {}

    assert as_hook("CLAIMS", claims) is claims
    with pytest.raises(ConfigError) as err:
        as_hook("CLAIMS", 42)
    assert err.value.name == "CLAIMS"
    assert str(err.value) == "invalid setting SILENTAUTH_CLAIMS: 42 is not an async callable taking a TokenContext"


# --- TokenHooks: answers checked, failures a 503 with a paced log ---


async def test_without_hooks_there_are_no_claims_and_the_configured_lifetimes() -> None:
    hooks = TokenHooks()
    assert not hooks.active
    assert await hooks.claims(LOGIN) == {}
    assert await hooks.lifetimes(LOGIN) is DEFAULT_LIFETIMES


async def test_the_default_claims_limit_is_2048_bytes(caplog: pytest.LogCaptureFixture) -> None:
    size = {"n": 0}

    async def claims(context: TokenContext) -> Mapping[str, Any]:
        return {"pad": "x" * (size["n"] - len('{"pad":""}'))}

    hooks = TokenHooks(claims)
    size["n"] = 2048
    assert len((await hooks.claims(LOGIN))["pad"]) == 2038
    size["n"] = 2049
    with pytest.raises(ClaimsUnavailable):
        await hooks.claims(LOGIN)
    assert hook_lines(caplog) == [
        "claims hook returned 2049 bytes of claims, more than CLAIMS_MAX_BYTES=2048 "
        "for user 'u-1' at login; no token issued"
    ]


async def test_each_failure_is_a_503_and_a_log_line_naming_the_hook_user_and_event(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ticks = FakeClock(0.0)  # a host up for less than LOG_EVERY: the first line is still written

    async def hang(context: TokenContext) -> Any:
        await anyio.sleep(10)

    async def boom(context: TokenContext) -> Any:
        raise RuntimeError("directory down")

    async def wrong_claims(context: TokenContext) -> Any:
        return {"sub": "admin"}

    async def wrong_lifetimes(context: TokenContext) -> Any:
        return {"access_ttl": 60}

    cases = [
        (TokenHooks(hang, timeout=0.05, monotonic=ticks), "claims", "claims hook did not answer within 0.05 s"),
        (TokenHooks(None, hang, timeout=0.05, monotonic=ticks), "lifetimes", "lifetime hook did not answer within 0.05 s"),
        (TokenHooks(boom, monotonic=ticks), "claims", "claims hook raised RuntimeError: directory down"),
        (TokenHooks(None, boom, monotonic=ticks), "lifetimes", "lifetime hook raised RuntimeError: directory down"),
        (TokenHooks(wrong_claims, monotonic=ticks), "claims", "claims hook returned reserved claims ['sub']"),
        (TokenHooks(None, wrong_lifetimes, monotonic=ticks), "lifetimes", "lifetime hook returned dict, not Lifetimes"),
    ]
    for hooks, method, line in cases:
        caplog.clear()
        with pytest.raises(ClaimsUnavailable) as err:
            await getattr(hooks, method)(REFRESH)
        assert err.value.status_code == 503
        assert err.value.headers()["Retry-After"] == "5"
        assert err.value.__cause__ is None and err.value.__suppress_context__
        assert hook_lines(caplog) == [f"{line} for user 'u-2' at refresh; no token issued"]


async def test_a_broken_hook_logs_one_line_per_interval_with_the_count_in_between(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ticks = FakeClock(0.0)

    async def boom(context: TokenContext) -> Any:
        raise RuntimeError("down")

    hooks = TokenHooks(boom, monotonic=ticks)

    async def refuse_at(now: float) -> None:
        ticks.set(now)
        with pytest.raises(ClaimsUnavailable):
            await hooks.claims(LOGIN)

    line = "claims hook raised RuntimeError: down for user 'u-1' at login; no token issued"
    await refuse_at(0.0)
    assert hook_lines(caplog) == [line]
    for now in (1.0, 5.0, LOG_EVERY - 0.01):
        await refuse_at(now)
    assert hook_lines(caplog) == [line]  # quiet within the interval
    await refuse_at(LOG_EVERY)  # a full interval later: a line, with the count
    assert hook_lines(caplog)[1:] == [f"{line} (3 more refusals since the last line)"]
    await refuse_at(3 * LOG_EVERY)  # none in between: no count
    assert hook_lines(caplog)[2:] == [line]
