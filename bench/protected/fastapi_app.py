"""FastAPI with :class:`BearerAuthMiddleware` and the ``CurrentPrincipal`` dependency.

Serve with ``uvicorn --factory bench.protected.fastapi_app:create_app``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from bench.protected import PAYLOAD, issuer
from silentauth.resource import BearerAuthMiddleware, TokenAuthenticator
from silentauth.resource.fastapi import CurrentPrincipal, add_bearer_error_handler


def create_app() -> FastAPI:
    """The app, as the README's "Protect your own API" wires it."""
    auth = TokenAuthenticator.from_issuer(issuer())
    app = FastAPI(lifespan=auth.lifespan, openapi_url=None, docs_url=None, redoc_url=None)
    app.add_middleware(BearerAuthMiddleware, authenticator=auth)
    add_bearer_error_handler(app)

    @app.get("/open")
    async def open_route() -> dict[str, Any]:
        return PAYLOAD

    @app.get("/protected")
    async def protected(p: CurrentPrincipal) -> dict[str, Any]:
        return PAYLOAD

    return app
