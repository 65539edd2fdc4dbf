from __future__ import annotations

import random

from silentauth.core.policy import LifetimePolicy
from silentauth.settings import Settings

NOW = 1_800_000_000.0


def test_jitter_only_shortens_and_stays_within_the_fraction() -> None:
    policy = LifetimePolicy(Settings(access_ttl=1000, ttl_jitter=0.1), random.Random(1))
    exps = [policy.access_expiry("api", NOW, NOW + 10**6) - NOW for _ in range(2000)]
    assert 900 <= min(exps) and max(exps) <= 1000
    assert max(exps) - min(exps) > 80  # actually spread, not constant


def test_no_jitter_gives_exact_lifetimes() -> None:
    policy = LifetimePolicy(Settings(access_ttl=600, ttl_jitter=0.0))
    assert policy.access_expiry("api", NOW, NOW + 10**6) == NOW + 600
    assert policy.idle_deadline(NOW) == NOW + 7 * 86400


def test_risk_based_scope_gets_the_shorter_lifetime() -> None:
    policy = LifetimePolicy(Settings(access_ttl=900, ttl_jitter=0.0, token_policy={"payments": 120}))
    assert policy.base_access_ttl("api payments") == 120
    assert policy.base_access_ttl("api") == 900


def test_access_token_never_outlives_the_session() -> None:
    policy = LifetimePolicy(Settings(access_ttl=900, ttl_jitter=0.0))
    assert policy.access_expiry("api", NOW, NOW + 30) == NOW + 30


def test_first_token_of_a_session_is_spread_over_most_of_a_lifetime() -> None:
    policy = LifetimePolicy(
        Settings(access_ttl=1000, ttl_jitter=0.1, first_token_spread=0.9), random.Random(7)
    )
    firsts = [policy.access_expiry("api", NOW, NOW + 10**6, first=True) - NOW for _ in range(2000)]
    later = [policy.access_expiry("api", NOW, NOW + 10**6) - NOW for _ in range(2000)]
    assert 100 <= min(firsts) < 150 and max(firsts) > 950  # spread across 10 %..100 %
    assert min(later) >= 900  # later tokens keep the ordinary jitter


def test_bad_first_token_spread_is_a_config_error() -> None:
    import pytest

    from silentauth.errors import ConfigError

    with pytest.raises(ConfigError, match="FIRST_TOKEN_SPREAD"):
        Settings(first_token_spread=1.0)


def test_first_token_gets_the_ordinary_jitter_when_the_spread_is_off() -> None:
    policy = LifetimePolicy(
        Settings(access_ttl=1000, ttl_jitter=0.1, first_token_spread=0.0), random.Random(3)
    )
    firsts = [policy.access_expiry("api", NOW, NOW + 10**6, first=True) - NOW for _ in range(500)]
    assert 900 <= min(firsts) and max(firsts) <= 1000
    assert max(firsts) - min(firsts) > 50


def test_a_lifetime_hook_cap_replaces_access_ttl_and_risky_scopes_still_shorten_it() -> None:
    policy = LifetimePolicy(Settings(access_ttl=900, ttl_jitter=0.0, token_policy={"payments": 120}))
    far = NOW + 10**6
    assert policy.access_expiry("api", NOW, far, cap=3600) == NOW + 3600  # longer than ACCESS_TTL
    assert policy.access_expiry("api", NOW, far, cap=60) == NOW + 60
    assert policy.access_expiry("api payments", NOW, far, cap=3600) == NOW + 120  # risk first


def test_a_session_lasts_session_max_age_unless_a_hook_says_otherwise() -> None:
    policy = LifetimePolicy(Settings(ttl_jitter=0.0, session_max_age=86400))
    assert policy.session_expiry(NOW) == NOW + 86400
    assert policy.session_expiry(NOW, max_age=600) == NOW + 600


def test_a_seeded_policy_gives_the_same_lifetimes_again() -> None:
    # `silentauth storm` replays a cohort from a seed: the jitter must come from the given PRNG.
    s = Settings(access_ttl=1000, ttl_jitter=0.5, first_token_spread=0.9)

    def lifetimes() -> list[float]:
        policy = LifetimePolicy(s, random.Random(11))
        return [
            policy.access_expiry("api", NOW, NOW + 10**6, first=True),
            policy.access_expiry("api", NOW, NOW + 10**6),
            policy.idle_deadline(NOW),
            policy.session_expiry(NOW),
        ]

    assert lifetimes() == lifetimes()
