"""The ASGI application factory."""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route

from silentauth.clock import Clock, system_clock
from silentauth.core.hooks import ClaimsHook, LifetimeHook
from silentauth.core.identity import IdentityProvider
from silentauth.core.passwords import Passwords
from silentauth.core.ports import Store
from silentauth.errors import StoreUnavailable
from silentauth.resource.middleware import BearerAuthMiddleware
from silentauth.resource.verify import Principal
from silentauth.server import (
    auth_routes,
    demo_routes,
    discovery_routes,
    introspection,
    monitoring_routes,
    openapi,
    realtime_routes,
    service_routes,
    verifier_routes,
)
from silentauth.server.cors import CORSMiddleware
from silentauth.server.errors import EXCEPTION_HANDLERS, CatchAllMiddleware
from silentauth.server.headers import SecurityHeadersMiddleware
from silentauth.server.proxy import ProxyHeadersMiddleware, TrustedProxies
from silentauth.server.runtime import Runtime
from silentauth.server.token_endpoint import TokenEndpoint, TokenFastPath
from silentauth.server.token_route import TokenRoute
from silentauth.settings import Settings
from silentauth.stores.base import open_store


def create_app(
    settings: Settings | None = None,
    *,
    store: Store | None = None,
    clock: Clock = system_clock,
    passwords: Passwords | None = None,
    rng: random.Random | None = None,
    background: bool = True,
    identity: IdentityProvider | None = None,
    claims: ClaimsHook | None = None,
    lifetimes: LifetimeHook | None = None,
) -> Starlette:
    """Build the token service. ``background=False`` leaves polling to the caller (tests).

    ``identity`` checks logins instead of the built-in user table (or set
    ``IDENTITY=module:attr``); ``claims`` and ``lifetimes`` are the hooks of
    :mod:`silentauth.core.hooks` (or ``CLAIMS_HOOK`` / ``LIFETIME_HOOK``).
    """
    settings = settings or Settings.load()
    rt = Runtime(
        settings,
        store or open_store(settings.database_url),
        clock,
        passwords or Passwords(),
        rng,
        identity=identity,
        claims=claims,
        lifetimes=lifetimes,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await rt.start()
        async with anyio.create_task_group() as tg:
            if background:
                tg.start_soon(rt.run_background)
            yield
            tg.cancel_scope.cancel()
        await rt.store.close()

    async def renew(principal: Principal) -> str | None:
        try:
            return await rt.service.renew(dict(principal.claims))
        except StoreUnavailable:
            # The response has started: renewal is a bonus, never a reason to fail it.
            return None

    token_endpoint = TokenEndpoint(rt)
    proxies = TrustedProxies(settings.trusted_proxies, settings.proxy_headers)
    app = Starlette(
        routes=[
            Route("/auth/token", token_endpoint),
            *auth_routes.routes,
            *service_routes.routes,
            *verifier_routes.routes,
            *introspection.routes,
            *discovery_routes.routes,
            *monitoring_routes.routes,
            *openapi.routes,
            *demo_routes.routes,
            *realtime_routes.routes,
        ],
        middleware=[
            Middleware(SecurityHeadersMiddleware),
            # Outermost, so error answers (a 500 included) carry CORS headers too and
            # a listed origin's page can read them.
            Middleware(CORSMiddleware, origins=settings.cors_origins, max_age=settings.cors_max_age),
            Middleware(ProxyHeadersMiddleware, proxies=proxies),
            Middleware(CatchAllMiddleware),
            Middleware(TokenFastPath, endpoint=token_endpoint),
            Middleware(BearerAuthMiddleware, authenticator=rt.authenticator, renewer=renew),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    # Starlette answers '/api/me/' with a redirect to an absolute URL built from the
    # request's Host header (and keeps method and body with 307): a forged Host turns
    # it into a redirect to any site. Paths are exact here; anything else is a 404.
    app.router.redirect_slashes = False
    app.state.runtime = rt
    # What the stack above does for POST /auth/token, for the protocol that answers it
    # without the stack (server/token_protocol.py); it compares the middleware list
    # before serving, so one added later turns that path off.
    app.state.token_route = TokenRoute(token_endpoint, proxies, settings.cors_origins, tuple(app.user_middleware))
    demo_routes.install(app, rt)
    return app
