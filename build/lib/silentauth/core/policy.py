"""Lifetimes: jittered so that cohorts spread out, capped by the session's limit.

Every lifetime is shortened by a random fraction up to ``ttl_jitter``. That
alone spreads a burst of logins only as a random walk: hours later the cohort
still refreshes as a wave. So the *first* access token of a session is
shortened by up to ``first_token_spread`` (default 90 %): the cohort is spread
over a whole lifetime at its first refresh, for the price of one early refresh
per session (``silentauth storm`` measures both).
"""

from __future__ import annotations

import random

from silentauth.settings import Settings


class LifetimePolicy:
    """Decides how long access tokens, refresh idleness and sessions last."""

    def __init__(self, settings: Settings, rng: random.Random | None = None) -> None:
        self._s = settings
        # Jitter spreads load; it is not a secret, so a seedable PRNG is right here.
        self._rng = rng or random.Random()  # noqa: S311
        self._ttl_by_scope: dict[str, int] = {}

    def _jitter(self, seconds: float) -> float:
        return seconds * (1.0 - self._rng.uniform(0.0, self._s.ttl_jitter))

    def _scope_limits(self, scope: str) -> list[int]:
        granted = set(scope.split())
        return [t for name, t in self._s.token_policy.items() if name in granted]

    def base_access_ttl(self, scope: str) -> int:
        """The risk-based lifetime: the shortest policy entry among the scopes."""
        # The cache only saves recomputing the same value: its mutants are equivalent.
        ttl = self._ttl_by_scope.get(scope)  # pragma: no mutate
        if ttl is None:
            ttl = min([self._s.access_ttl, *self._scope_limits(scope)])
            if len(self._ttl_by_scope) < 1024:  # pragma: no mutate - scope strings come from a small set
                self._ttl_by_scope[scope] = ttl  # pragma: no mutate
        return ttl

    def access_expiry(
        self, scope: str, now: float, session_expires_at: float, first: bool = False, cap: int | None = None
    ) -> int:
        """When an access token minted at ``now`` expires.

        ``cap`` is a lifetime hook's answer: it replaces ``ACCESS_TTL`` (longer
        or shorter), and the per-scope policy still shortens it (risk first).
        """
        ttl: float = self.base_access_ttl(scope)
        if cap is not None:
            ttl = min([cap, *self._scope_limits(scope)])
        if first and self._s.first_token_spread > 0:
            ttl *= 1.0 - self._rng.uniform(0.0, self._s.first_token_spread)
        else:
            ttl = self._jitter(ttl)
        return int(min(now + ttl, session_expires_at))

    def idle_deadline(self, now: float) -> float:
        return now + self._jitter(self._s.refresh_idle_ttl)

    def session_expiry(self, now: float, max_age: int | None = None) -> float:
        """The absolute end of a session started at ``now`` (``max_age`` overrides the setting)."""
        return now + self._jitter(self._s.session_max_age if max_age is None else max_age)
