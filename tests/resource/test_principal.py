"""``Principal.require``: the one scope and ``max_age`` check behind every adapter."""

from __future__ import annotations

import pytest

from silentauth.errors import InsufficientScope, InsufficientUserAuthentication
from silentauth.resource.verify import Principal

NOW = 1_800_000_000.0


def principal(scope: str = "api profile", auth_time: float = NOW - 100) -> Principal:
    claims = {"sub": "u1", "sid": "s1", "scope": scope, "auth_time": auth_time, "exp": NOW + 60}
    return Principal("token", claims, frozenset(scope.split()))


def test_granted_scopes_pass_and_the_first_missing_one_is_named() -> None:
    p = principal()
    assert p.require() is p
    assert p.require("api", "profile") is p
    with pytest.raises(InsufficientScope) as info:
        p.require("api", "payments", "admin")
    assert info.value.scope == "payments"
    assert info.value.challenge() == 'Bearer error="insufficient_scope", scope="payments"'


def test_max_age_allows_exactly_the_age_and_refuses_older() -> None:
    p = principal(auth_time=NOW - 300)
    assert p.require(max_age=300, now=NOW) is p
    with pytest.raises(InsufficientUserAuthentication) as info:
        p.require(max_age=300, now=NOW + 0.5)
    assert info.value.max_age == 300
    assert info.value.challenge().endswith("max_age=300")


def test_scope_is_judged_before_max_age() -> None:
    # A token lacking the scope gets 403 even when its login is stale too:
    # a fresh login would not help it (RFC 6750 §3.1 before RFC 9470).
    p = principal(auth_time=NOW - 10_000)
    with pytest.raises(InsufficientScope):
        p.require("payments", max_age=60, now=NOW)


def test_max_age_without_now_uses_the_system_clock() -> None:
    with pytest.raises(InsufficientUserAuthentication):
        principal(auth_time=0.0).require(max_age=60)
    assert principal(auth_time=NOW * 2).require(max_age=60)
