"""FastAPI with :class:`BearerAuthMiddleware` and a ``BearerRoute`` router.

Both routes sit on included routers, as the README's example does: ``/open``
on a plain ``APIRouter``, ``/protected`` on ``APIRouter(route_class=BearerRoute)``,
so the only difference between them is the protection. ``create_app(depends=True)``
protects ``/protected`` with the dependency form instead (a plain router, the
route taking ``p: CurrentPrincipal``), for :mod:`bench.app_cost` to price a
``Depends``. Serve with
``uvicorn --factory bench.protected.fastapi_app:create_app``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request

from bench.protected import PAYLOAD, issuer
from silentauth.resource import BearerAuthMiddleware, TokenAuthenticator
from silentauth.resource.fastapi import (
    BearerRoute,
    CurrentPrincipal,
    add_bearer_error_handler,
    require_auth,
)


def create_app(depends: bool = False) -> FastAPI:
    """The app, as the README's "Protect your own API" wires it."""
    auth = TokenAuthenticator.from_issuer(issuer())
    app = FastAPI(lifespan=auth.lifespan, openapi_url=None, docs_url=None, redoc_url=None)
    app.add_middleware(BearerAuthMiddleware, authenticator=auth)
    add_bearer_error_handler(app)
    public = APIRouter()
    api = APIRouter() if depends else APIRouter(route_class=BearerRoute)

    @public.get("/open")
    async def open_route() -> dict[str, Any]:
        return PAYLOAD

    if depends:

        @api.get("/protected")
        async def protected_by_dependency(p: CurrentPrincipal) -> dict[str, Any]:
            return PAYLOAD

    else:

        @api.get("/protected")
        async def protected(request: Request) -> dict[str, Any]:
            require_auth(request)  # the caller, as a route reads it
            return PAYLOAD

    app.include_router(public)
    app.include_router(api)
    return app
