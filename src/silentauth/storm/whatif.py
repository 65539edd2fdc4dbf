"""A what-if lifetime policy, to measure a proposed core change before making it.

Today every access token's lifetime is shortened by ``U(0, ttl_jitter)``. A
burst of logins then spreads only by a random walk: after ``k`` refreshes the
cohort is ``~ sqrt(k)`` jitter widths wide, which at 10 % jitter is still a
sharp wave hours later. :class:`FirstTokenSpread` instead spreads the *first*
token of each session over most of a lifetime, so the cohort is desynchronised
at the first refresh; later tokens keep the normal jitter. The cost is one
early refresh per session.

This is not the token service's policy; ``silentauth storm`` uses it only in
the scenario labelled "proposal".
"""

from __future__ import annotations

import random

from silentauth.core.policy import LifetimePolicy
from silentauth.settings import Settings


class FirstTokenSpread(LifetimePolicy):
    """The first access token of a session lives ``U(1 - spread, 1)`` of its TTL.

    :meth:`SessionService.login` asks for the session expiry before minting,
    and refresh never does; that call order marks the next token as a first one.
    """

    def __init__(self, settings: Settings, rng: random.Random, spread: float = 0.9) -> None:
        super().__init__(settings, rng)
        self._spread_rng = rng
        self._spread = spread
        self._first = False

    def session_expiry(self, now: float) -> float:
        self._first = True
        return super().session_expiry(now)

    def access_expiry(self, scope: str, now: float, session_expires_at: float) -> int:
        if not self._first:
            return super().access_expiry(scope, now, session_expires_at)
        self._first = False
        ttl = self.base_access_ttl(scope) * (1.0 - self._spread_rng.uniform(0.0, self._spread))
        return int(min(now + ttl, session_expires_at))
