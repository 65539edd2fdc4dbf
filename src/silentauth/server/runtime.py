"""What a running token service holds: store, keys, service, metrics, tasks."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio

from silentauth.clock import Clock
from silentauth.core.keys import KeyManager, KeyRing, MasterKey
from silentauth.core.passwords import Passwords, normalize_username
from silentauth.core.policy import LifetimePolicy
from silentauth.core.refresh import RefreshTokens
from silentauth.core.sessions import Grant, SessionService
from silentauth.core.tokens import AccessTokenVerifier
from silentauth.errors import AlreadyExists, StoreUnavailable
from silentauth.resource.verify import TokenAuthenticator
from silentauth.server.metrics import Metrics
from silentauth.settings import Settings
from silentauth.stores.base import Store, User
from silentauth.stores.revocations import RevocationSet

log = logging.getLogger("silentauth.server")

KEY_RELOAD_SECONDS = 5.0
PURGE_SECONDS = 600.0
# Forged kids must not turn into a database read per request.
KEY_LEARN_INTERVAL = 1.0


@dataclass
class Runtime:
    """The wired service; ``start`` loads state, ``run_background`` keeps it fresh."""

    settings: Settings
    store: Store
    clock: Clock
    passwords: Passwords
    rng: random.Random | None = None
    metrics: Metrics = field(default_factory=Metrics)
    # Called after each browser refresh (/auth/refresh) with the session id, the refresh
    # token the browser presented and the grant; the demo's replay action is one (and
    # the only one unless SILENTAUTH_DEMO is on).
    browser_refresh_observers: list[Callable[[str, str, Grant], None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        s = self.settings
        self.master = MasterKey.from_settings(s.secret_key, s.secret_key_file, s.database_url)
        # Keys verify as long as any token they signed may live.
        self.keys = KeyManager(
            self.store, self.master, s.key_lifetime, verify_grace=s.access_ttl + 60, prepublish=s.key_prepublish
        )
        self.ring = KeyRing([], s.access_ttl + 60)
        self.revocations = RevocationSet(self.store)
        self.refresh_tokens = RefreshTokens(self.master)
        self.service = SessionService(
            s,
            self.store,
            lambda: self.ring,
            self.refresh_tokens,
            self.passwords,
            self.revocations,
            self.clock,
            LifetimePolicy(s, self.rng),
            self.metrics.event,
            self.metrics.batch,
        )
        self.verifier = AccessTokenVerifier.from_ring(lambda: self.ring, s.issuer, s.audience)
        self.authenticator = TokenAuthenticator(
            self.verifier, self.revocations.__contains__, self.clock, key_learner=self.learn_key
        )
        self._last_key_reload = 0.0

    async def start(self) -> None:
        await self.store.open()
        await self.reload_keys()
        await self.revocations.sync()
        if self.settings.demo:
            await self.ensure_user("demo", "demo")

    async def reload_keys(self) -> None:
        self.ring = await self.keys.load(self.clock())
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
        import uuid

        try:
            await self.store.add_user(
                User(
                    str(uuid.uuid4()),
                    normalize_username(username),
                    self.passwords.hash(password),
                    self.clock(),
                )
            )
        except AlreadyExists:
            pass

    async def run_background(self) -> None:
        """Revocation feed, key reload and purge, each surviving store failures."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.revocations.follow, self.settings.revocation_poll)
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
