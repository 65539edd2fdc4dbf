"""A third-party FastAPI API protected by silentauth access tokens (JWKS over HTTP).

Run: SILENTAUTH_ISSUER=http://127.0.0.1:8000 uvicorn examples.fastapi_app:app --port 9000
"""

import os
from typing import Any

from fastapi import APIRouter, FastAPI, Request

from silentauth.resource import BearerAuthMiddleware, TokenAuthenticator
from silentauth.resource.fastapi import (
    BearerRoute,
    add_bearer_error_handler,
    require_auth,
)


def create_app(issuer: str, **options: Any) -> FastAPI:
    # Keys from {issuer}/.well-known/jwks.json; revoked sessions from the feed
    # {issuer}/auth/revocations, polled every second (revocation_url=False opts out).
    auth = TokenAuthenticator.from_issuer(issuer, **options)
    app = FastAPI(lifespan=auth.lifespan)  # prefetches keys, runs both pollers
    app.add_middleware(BearerAuthMiddleware, authenticator=auth)
    add_bearer_error_handler(app)  # BearerError -> RFC 6750 401/403 + WWW-Authenticate

    # Every route of this router answers 401 without a valid token, before FastAPI
    # solves anything; OpenAPI lists the bearer scheme on each.
    api = APIRouter(route_class=BearerRoute)

    @api.get("/whoami")
    async def whoami(request: Request) -> dict[str, str]:
        p = require_auth(request)
        return {"sub": p.subject, "username": p.username}

    @api.post("/transfer")
    async def transfer(request: Request) -> dict[str, str]:
        # 403 insufficient_scope without the scope; 401 RFC 9470 step-up if the login is older than 5 min
        p = require_auth(request, scope="payments", max_age=300)
        return {"status": "accepted", "by": p.subject}

    app.include_router(api)
    return app


app = create_app(os.environ.get("SILENTAUTH_ISSUER", "http://127.0.0.1:8000"))
