"""What a running token service holds: store, keys, service, metrics, tasks."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable

import anyio

from silentauth.clock import Clock
from silentauth.core.assembly import TokenCore
from silentauth.core.hooks import ClaimsHook, LifetimeHook
from silentauth.core.identity import IdentityProvider
from silentauth.core.passwords import Passwords
from silentauth.core.ports import Store
from silentauth.core.sessions import Grant
from silentauth.core.tokens import AccessTokenVerifier
from silentauth.errors import StoreUnavailable
from silentauth.resource.verify import TokenAuthenticator
from silentauth.server.metrics import Metrics
from silentauth.settings import Settings

log = logging.getLogger("silentauth.server")

KEY_RELOAD_SECONDS = 5.0
PURGE_SECONDS = 600.0
# Forged kids must not turn into a database read per request.
KEY_LEARN_INTERVAL = 1.0


class Runtime(TokenCore):
    """The wired service; ``start`` loads state, ``run_background`` keeps it fresh.

    The core's events feed ``metrics``; the access-token check (the resource
    kit's :class:`TokenAuthenticator`) consults the core's key ring and
    revocation set.
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        clock: Clock,
        passwords: Passwords,
        rng: random.Random | None = None,
        metrics: Metrics | None = None,
        *,
        identity: IdentityProvider | None = None,
        claims: ClaimsHook | None = None,
        lifetimes: LifetimeHook | None = None,
    ) -> None:
        self.rng = rng
        self.metrics = metrics if metrics is not None else Metrics()
        super().__init__(
            settings=settings,
            store=store,
            clock=clock,
            passwords=passwords,
            rng=rng,
            events=self.metrics,
            identity=identity,
            claims=claims,
            lifetimes=lifetimes,
        )
        self.verifier = AccessTokenVerifier.from_ring(lambda: self.ring, settings.issuer, settings.audience)
        self.authenticator = TokenAuthenticator(
            self.verifier, self.revocations.__contains__, self.clock, key_learner=self.learn_key
        )
        self._last_key_reload = 0.0
        self._started = False
        # Called after each browser refresh (/auth/refresh) with the session id, the refresh
        # token the browser presented and the grant; the demo's replay action is one (and
        # the only one unless SILENTAUTH_DEMO is on).
        self.browser_refresh_observers: list[Callable[[str, str, Grant], None]] = []

    async def start(self) -> None:
        """Open the store, load keys and revocations, seed the demo user.

        Once only: ``silentauth serve`` starts the runtime before uvicorn runs
        the lifespan, so that a failure is reported as one line, not a traceback.
        """
        if self._started:
            return
        await self.store.open()
        await super().start()
        if self.settings.demo:
            await self.ensure_user("demo", "demo")
        self._started = True

    async def reload_keys(self) -> None:
        """Re-read the keys, and note when (for :meth:`learn_key`'s rate limit)."""
        await super().reload_keys()
        self._last_key_reload = time.monotonic()

    async def learn_key(self, kid: str) -> bool:
        """An unknown ``kid``: another instance may have rotated. Reload, at most 1/s."""
        if time.monotonic() - self._last_key_reload < KEY_LEARN_INTERVAL:
            return False
        try:
            await self.reload_keys()
        except StoreUnavailable:
            self._last_key_reload = time.monotonic()  # no retry storm while it is down
            return False
        return self.ring.get(kid, self.clock()) is not None

    async def ensure_user(self, username: str, password: str) -> None:
        """Add ``username`` unless it exists (demo and test seeding)."""
        await self.users.ensure(username, password)

    async def run_background(self) -> None:
        """Revocation feed, key reload and purge, each surviving store failures."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.revocations.follow)
            tg.start_soon(self._every, KEY_RELOAD_SECONDS, self.reload_keys)
            tg.start_soon(self._every, PURGE_SECONDS, self._purge)

    async def _purge(self) -> None:
        await self.store.purge(self.clock(), keep_revocations=self.settings.access_ttl + 120)

    async def _every(self, seconds: float, job: Callable[[], Awaitable[None]]) -> None:
        while True:
            await anyio.sleep(seconds)
            try:
                await job()
            except Exception as exc:
                log.warning("%s failed: %s", getattr(job, "__name__", job), type(exc).__name__)
