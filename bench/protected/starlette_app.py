"""Starlette with :class:`BearerAuthMiddleware` and :func:`require_auth` in the route.

Serve with ``uvicorn --factory bench.protected.starlette_app:create_app``.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bench.protected import PAYLOAD, issuer
from silentauth.errors import BearerError
from silentauth.resource import BearerAuthMiddleware, TokenAuthenticator, require_auth
from silentauth.resource.responses import error_response


async def open_route(request: Request) -> Response:
    return JSONResponse(PAYLOAD)


async def protected(request: Request) -> Response:
    require_auth(request)
    return JSONResponse(PAYLOAD)


async def refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BearerError)
    return error_response(exc)


def create_app() -> Starlette:
    """The app, as the README's "Protect your own API" wires it for Starlette."""
    auth = TokenAuthenticator.from_issuer(issuer())
    return Starlette(
        routes=[Route("/open", open_route), Route("/protected", protected)],
        middleware=[Middleware(BearerAuthMiddleware, authenticator=auth)],
        exception_handlers={BearerError: refused},
        lifespan=auth.lifespan,
    )
