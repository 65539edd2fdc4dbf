"""An authenticator for apps that are not the token service.

It wires the parts a third-party API needs from nothing but the issuer URL::

    auth = TokenAuthenticator.from_issuer("https://auth.example.com")
    app = FastAPI(lifespan=auth.lifespan)
    app.add_middleware(BearerAuthMiddleware, authenticator=auth)

Keys come from the issuer's JWKS (:class:`~silentauth.resource.jwks.JWKSKeySource`),
revocations from its feed (:class:`~silentauth.resource.revocations.RevocationFollower`)
unless ``revocation_url=False``: an API that ignored the feed would accept a
logged-out or theft-killed session's tokens until they expire. The lifespan
prefetches the keys and polls the feed in the background; without it, the
first request fetches the keys on demand and requests pull the feed
themselves, at most once per ``revocation_poll``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import httpx

from silentauth.clock import Clock, system_clock
from silentauth.core.tokens import AccessTokenVerifier
from silentauth.resource.jwks import JWKSKeySource
from silentauth.resource.revocations import RevocationFollower
from silentauth.resource.verify import Principal, TokenAuthenticator

log = logging.getLogger("silentauth.resource")

JWKS_PATH = "/.well-known/jwks.json"
REVOCATIONS_PATH = "/auth/revocations"


def _never_revoked(sid: str) -> bool:
    return False


def _feed_beside(jwks_url: str | None, issuer_base: str) -> str:
    """The revocation feed on the server that serves the keys."""
    if jwks_url is not None and jwks_url.endswith(JWKS_PATH):
        return jwks_url[: -len(JWKS_PATH)] + REVOCATIONS_PATH
    return issuer_base + REVOCATIONS_PATH


class RemoteAuthenticator(TokenAuthenticator):
    """A :class:`TokenAuthenticator` fed by the issuer over HTTP.

    Args:
        issuer: the ``iss`` the tokens must carry; also the base URL unless
            ``jwks_url`` / ``revocation_url`` say otherwise.
        audience: the ``aud`` this API accepts.
        jwks_url: where to fetch keys (default ``{issuer}/.well-known/jwks.json``).
        revocation_url: the feed to follow. ``True`` (default) means
            ``/auth/revocations`` on the server that serves the JWKS (the
            issuer unless ``jwks_url`` names another); ``False`` or ``None``
            follows none, so revoked sessions' tokens pass until they expire.
        refetch_interval: least seconds between two JWKS fetches caused by an
            unknown ``kid``.
        jwks_max_age: the lifespan refreshes the keys this often anyway.
        revocation_poll: seconds between two polls of the feed.
        client: an ``httpx.AsyncClient`` to use (the caller closes it).
        clock: token time (epoch seconds); ``monotonic``: rate-limit time.
        leeway: seconds of clock skew tolerated on ``exp``/``nbf``/``iat``.
    """

    def __init__(
        self,
        issuer: str,
        audience: str = "silentauth",
        *,
        jwks_url: str | None = None,
        revocation_url: str | bool | None = True,
        refetch_interval: float = 10.0,
        jwks_max_age: float = 300.0,
        revocation_poll: float = 1.0,
        client: httpx.AsyncClient | None = None,
        clock: Clock = system_clock,
        monotonic: Callable[[], float] = time.monotonic,
        leeway: float = 5.0,
        cache_size: int = 50_000,
    ) -> None:
        base = issuer.rstrip("/")
        self.jwks = JWKSKeySource(
            jwks_url or base + JWKS_PATH,
            refetch_interval=refetch_interval,
            client=client,
            monotonic=monotonic,
        )
        self.jwks_max_age = jwks_max_age
        if revocation_url is True:
            revocation_url = _feed_beside(jwks_url, base)
        self.revocations: RevocationFollower | None = None
        is_revoked: Callable[[str], bool] = _never_revoked
        if isinstance(revocation_url, str):
            self.revocations = RevocationFollower(
                revocation_url, poll=revocation_poll, client=client, monotonic=monotonic
            )
            is_revoked = self.revocations.__contains__
        self._following = False
        self._pull_lock = anyio.Lock()
        verifier = AccessTokenVerifier(self.jwks.get, issuer, audience, leeway=leeway)
        super().__init__(
            verifier, is_revoked, clock, cache_size, key_learner=self.jwks.ensure_kid
        )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[RemoteAuthenticator]:
        """Prefetch the keys, keep keys and revocations fresh, close clients at exit."""
        if not await self.jwks.refresh():
            # Not fatal: the issuer may come up later; unknown kids trigger a fetch.
            log.warning("starting without keys: the issuer's JWKS is unreachable")
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self.jwks.follow, self.jwks_max_age)
                if self.revocations is not None:
                    await self.revocations.sync_quietly()
                    tg.start_soon(self.revocations.follow)
                    self._following = True
                yield self
                tg.cancel_scope.cancel()
        finally:
            self._following = False
            await self.aclose()

    def settled(self) -> bool:
        """False while a request must pull the revocation feed first (no lifespan follows it)."""
        feed = self.revocations
        return feed is None or self._following or not feed.due()

    async def aauthenticate(self, header: str | None) -> Principal:
        """Like :meth:`TokenAuthenticator.aauthenticate`; pulls the feed when no lifespan does."""
        if self.revocations is not None and not self._following:
            await self._pull_if_due(self.revocations)
        return await super().aauthenticate(header)

    async def _pull_if_due(self, feed: RevocationFollower) -> None:
        # Without the lifespan nobody polls: the requests do, one at a time and
        # at most once per poll interval, so the feed sees no more load than the
        # background poller would cause.
        if not feed.due():
            return
        async with self._pull_lock:
            if feed.due():
                await feed.sync_quietly()

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any) -> AsyncIterator[None]:
        """A Starlette/FastAPI ``lifespan=``: ``FastAPI(lifespan=auth.lifespan)``."""
        async with self.running():
            yield

    async def aclose(self) -> None:
        """Close the HTTP clients this authenticator created."""
        await self.jwks.aclose()
        if self.revocations is not None:
            await self.revocations.aclose()
