"""The token service inside an existing Starlette or FastAPI application.

One process, one event loop: the host mounts :attr:`SilentAuth.app` under a
prefix, runs :meth:`SilentAuth.lifespan` from its own lifespan (Starlette
does not run a mounted app's lifespan), protects its own routes with
:attr:`SilentAuth.authenticator` — the in-process key ring and revocation
set, so no HTTP round trip fetches keys — and starts sessions from its own
login with :meth:`SilentAuth.start_session`::

    auth = SilentAuth(settings, identity=my_users, claims=my_claims, prefix="/sa")
    app = FastAPI(lifespan=auth.lifespan)
    auth.install(app)                   # mount + bearer middleware + error handler

The browser client then uses ``baseUrl: origin + "/sa"``.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette

from silentauth.clock import Clock, system_clock
from silentauth.core.hooks import ClaimsHook, LifetimeHook
from silentauth.core.identity import IdentityProvider
from silentauth.core.passwords import Passwords
from silentauth.core.ports import SessionRecord, Store
from silentauth.errors import BearerError, StoreUnavailable
from silentauth.resource.middleware import BearerAuthMiddleware
from silentauth.resource.responses import error_response
from silentauth.resource.verify import Principal, TokenAuthenticator
from silentauth.server.app import create_app
from silentauth.server.app_sessions import StartedSession, check_id, start_session
from silentauth.server.runtime import Runtime
from silentauth.settings import Settings


class SilentAuth:
    """The token service as a part of the host application, and its session API."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        prefix: str = "/auth-service",
        store: Store | None = None,
        clock: Clock = system_clock,
        passwords: Passwords | None = None,
        rng: random.Random | None = None,
        identity: IdentityProvider | None = None,
        claims: ClaimsHook | None = None,
        lifetimes: LifetimeHook | None = None,
        background: bool = True,
    ) -> None:
        if not prefix.startswith("/") or prefix.endswith("/"):
            raise ValueError("prefix must start with '/' and not end with one, like '/sa'")
        self.prefix = prefix
        self.app: Starlette = create_app(
            settings,
            store=store,
            clock=clock,
            passwords=passwords,
            rng=rng,
            background=background,
            identity=identity,
            claims=claims,
            lifetimes=lifetimes,
        )
        self.runtime: Runtime = self.app.state.runtime

    @property
    def authenticator(self) -> TokenAuthenticator:
        """Checks access tokens against the in-process key ring and revocation set."""
        return self.runtime.authenticator

    @contextlib.asynccontextmanager
    async def lifespan(self, host: Any = None) -> AsyncIterator[None]:
        """Open the store and run the background jobs while the host app runs."""
        async with self.app.router.lifespan_context(self.app):
            yield

    async def renew(self, principal: Principal) -> str | None:
        """A ``New-Access-Token`` for a token close to expiry (for the bearer middleware)."""
        try:
            return await self.runtime.service.renew(dict(principal.claims))
        except StoreUnavailable:
            return None  # the host's response has started: renewal is only a bonus

    def install(self, host: Starlette) -> None:
        """Mount the service at :attr:`prefix` and protect the host's routes.

        Adds :class:`BearerAuthMiddleware` over the in-process authenticator
        (with renewal) and renders every :class:`BearerError` per RFC 6750.
        Call it before the host starts serving.
        """
        host.mount(self.prefix, self.app)
        host.add_middleware(BearerAuthMiddleware, authenticator=self.authenticator, renewer=self.renew)

        async def on_bearer_error(request: Any, exc: Exception) -> Any:
            if not isinstance(exc, BearerError):
                raise exc
            return error_response(exc)

        host.add_exception_handler(BearerError, on_bearer_error)

    async def start_session(
        self,
        user_id: str,
        *,
        username: str = "",
        scope: str | None = None,
        client_id: str = "app",
        device: str = "",
        ip: str = "",
        remember: bool | None = None,
    ) -> StartedSession:
        """Start a session for a user the application authenticated its own way.

        Claims come from the claims hook (now and at every refresh), so they
        follow the user's changes; :meth:`StartedSession.apply` sets the
        browser's cookies on the application's response.
        """
        return await start_session(
            self.runtime,
            user_id,
            username=username,
            scope=scope,
            client_id=client_id,
            device=device,
            ip=ip,
            remember=remember,
            root_path=self.prefix,
        )

    async def end_session(self, session_id: str) -> bool:
        """End one session now; False if it was not live."""
        return await self.runtime.service.revoke(check_id("session_id", session_id), "admin")

    async def list_sessions(self, user_id: str) -> list[SessionRecord]:
        """The live sessions of ``user_id``."""
        return await self.runtime.service.sessions(check_id("user_id", user_id))

    async def revoke_user_sessions(self, user_id: str) -> int:
        """End every session of ``user_id`` (an account locked or deleted)."""
        return await self.runtime.service.revoke_user(check_id("user_id", user_id), "admin")

    async def password_changed(self, user_id: str, keep_session: str | None = None) -> int:
        """The user's password changed: end every other session; return how many."""
        return await self.runtime.service.password_changed(check_id("user_id", user_id), keep_session)
